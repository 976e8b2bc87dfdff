//! Container cgroups: the `cgroupsPath` given to the runtime and statistics read back from the cgroup filesystem.
