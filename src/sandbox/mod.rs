//! Pod sandboxes: the namespaces, files and cgroup parent a pod's containers share.

pub mod files;
pub mod ns;
pub mod pause;
pub mod run;
pub mod stop;
