//! Reading container statistics from cgroup files, v1 and v2.
//!
//! The numbers follow what the kubelet/cAdvisor report for CRI `ContainerStats`:
//! working set = usage − inactive file pages (cAdvisor `setMemoryStats`), RSS = anonymous
//! memory, CPU as cumulative nanoseconds.
//! - v1 (cgroup-v1 memory.txt, cpuacct.txt, pids.txt): `memory.usage_in_bytes`,
//!   `memory.stat` `total_inactive_file`/`total_rss`/`total_pgfault`/`total_pgmajfault`,
//!   `cpuacct.usage`, `pids.current`.
//! - v2 (cgroup-v2.rst): `memory.current`, `memory.stat` `inactive_file`/`anon`/`pgfault`/
//!   `pgmajfault`, `cpu.stat` `usage_usec`, `pids.current`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use super::{CgroupError, CgroupStats};

/// Parse a flat-keyed file (`memory.stat`, `cpu.stat`): `key value` per line.
pub fn parse_flat_keyed(content: &str) -> HashMap<&str, u64> {
    content
        .lines()
        .filter_map(|l| {
            let mut it = l.split_ascii_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k, v))
        })
        .collect()
}

/// Parse a single-value file (`memory.current`, `pids.current`, `cpuacct.usage`); `max`
/// reads as `u64::MAX`.
pub fn parse_single(path: &Path, content: &str) -> Result<u64, CgroupError> {
    let t = content.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        value: t.chars().take(64).collect(),
    })
}

/// Read a file; `Ok(None)` when it does not exist (controller not enabled there).
fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Io {
            op: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn single_opt(path: &Path) -> Result<u64, CgroupError> {
    match read_opt(path)? {
        Some(s) => parse_single(path, &s),
        None => Ok(0),
    }
}

/// Statistics from cgroup v1 directories of one cgroup: `memory` is required (its absence
/// means the cgroup does not exist), cpuacct and pids are optional.
pub fn read_v1(
    memory: &Path,
    cpuacct: Option<&Path>,
    pids: Option<&Path>,
) -> Result<CgroupStats, CgroupError> {
    if !memory.is_dir() {
        return Err(CgroupError::NotFound {
            path: memory.to_path_buf(),
        });
    }
    let usage = single_opt(&memory.join("memory.usage_in_bytes"))?;
    let stat_path = memory.join("memory.stat");
    let stat_s = read_opt(&stat_path)?.unwrap_or_default();
    let stat = parse_flat_keyed(&stat_s);
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    let inactive = get("total_inactive_file");
    Ok(CgroupStats {
        cpu_usage_ns: match cpuacct {
            Some(d) => single_opt(&d.join("cpuacct.usage"))?,
            None => 0,
        },
        memory_usage: usage,
        memory_working_set: usage.saturating_sub(inactive),
        memory_rss: get("total_rss"),
        page_faults: get("total_pgfault"),
        major_page_faults: get("total_pgmajfault"),
        pids: match pids {
            Some(d) => single_opt(&d.join("pids.current"))?,
            None => 0,
        },
    })
}

/// Statistics from one cgroup v2 directory.
pub fn read_v2(dir: &Path) -> Result<CgroupStats, CgroupError> {
    if !dir.is_dir() {
        return Err(CgroupError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let usage = single_opt(&dir.join("memory.current"))?;
    let stat_s = read_opt(&dir.join("memory.stat"))?.unwrap_or_default();
    let stat = parse_flat_keyed(&stat_s);
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    let cpu_s = read_opt(&dir.join("cpu.stat"))?.unwrap_or_default();
    let cpu = parse_flat_keyed(&cpu_s);
    Ok(CgroupStats {
        cpu_usage_ns: cpu
            .get("usage_usec")
            .copied()
            .unwrap_or(0)
            .saturating_mul(1000),
        memory_usage: usage,
        memory_working_set: usage.saturating_sub(get("inactive_file")),
        memory_rss: get("anon"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        pids: single_opt(&dir.join("pids.current"))?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed() {
        let m = parse_flat_keyed("a 1\nb 22\nbad\nc x\n\n");
        assert_eq!(m.get("a"), Some(&1));
        assert_eq!(m.get("b"), Some(&22));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn single() {
        let p = Path::new("/x");
        assert_eq!(parse_single(p, "123\n").unwrap(), 123);
        assert_eq!(parse_single(p, "max\n").unwrap(), u64::MAX);
        assert!(matches!(
            parse_single(p, "12a"),
            Err(CgroupError::Parse { .. })
        ));
    }

    #[test]
    fn v1_files() {
        let t = tempfile::tempdir().unwrap();
        let mem = t.path().join("memory");
        let cpu = t.path().join("cpuacct");
        let pids = t.path().join("pids");
        for d in [&mem, &cpu, &pids] {
            fs::create_dir(d).unwrap();
        }
        fs::write(mem.join("memory.usage_in_bytes"), "1000\n").unwrap();
        fs::write(
            mem.join("memory.stat"),
            "cache 5\nrss 6\ninactive_file 1\ntotal_inactive_file 300\ntotal_rss 400\n\
             total_pgfault 7\ntotal_pgmajfault 2\n",
        )
        .unwrap();
        fs::write(cpu.join("cpuacct.usage"), "123456789\n").unwrap();
        fs::write(pids.join("pids.current"), "3\n").unwrap();
        let s = read_v1(&mem, Some(&cpu), Some(&pids)).unwrap();
        assert_eq!(
            s,
            CgroupStats {
                cpu_usage_ns: 123456789,
                memory_usage: 1000,
                memory_working_set: 700,
                memory_rss: 400,
                page_faults: 7,
                major_page_faults: 2,
                pids: 3,
            }
        );
        // Missing optional controllers read as zero; inactive > usage saturates.
        fs::write(mem.join("memory.stat"), "total_inactive_file 5000\n").unwrap();
        let s = read_v1(&mem, None, None).unwrap();
        assert_eq!((s.memory_working_set, s.cpu_usage_ns, s.pids), (0, 0, 0));
        assert!(matches!(
            read_v1(&t.path().join("nope"), None, None),
            Err(CgroupError::NotFound { .. })
        ));
    }

    #[test]
    fn v2_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(d.join("memory.current"), "2048\n").unwrap();
        fs::write(
            d.join("memory.stat"),
            "anon 1024\nfile 512\ninactive_file 48\npgfault 10\npgmajfault 1\n",
        )
        .unwrap();
        fs::write(
            d.join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        )
        .unwrap();
        fs::write(d.join("pids.current"), "4\n").unwrap();
        let s = read_v2(d).unwrap();
        assert_eq!(
            s,
            CgroupStats {
                cpu_usage_ns: 1_500_000,
                memory_usage: 2048,
                memory_working_set: 2000,
                memory_rss: 1024,
                page_faults: 10,
                major_page_faults: 1,
                pids: 4,
            }
        );
        fs::write(d.join("pids.current"), "garbage\n").unwrap();
        assert!(matches!(read_v2(d), Err(CgroupError::Parse { .. })));
    }
}
