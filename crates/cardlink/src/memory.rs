//! Where the process's memory is, by allocator: the Rust heap (mimalloc,
//! the global allocator) and the C heap (glibc's malloc, which librdkafka
//! uses). `cardlink run` logs both every 10 s beside its RSS, so that a
//! step in RSS can be put down to one allocator or the other (see
//! docs/reliability.md, "Soak").

/// Fixes glibc malloc's thresholds, for a long-running process. By
/// default glibc raises its mmap threshold to the largest block freed so
/// far (up to 32 MiB) and its trim threshold to twice that. librdkafka
/// frees fetch buffers of megabytes after a restore or a catch-up, and
/// from then on a thread's arena kept up to 64 MiB of free memory
/// resident: `malloc_trim` does not shrink the top of a thread's arena.
/// The soak showed it as a step in RSS of about 60 MiB at a broker
/// restart, with 2.6 MiB of the C heap in use. With fixed thresholds,
/// blocks of 256 KiB and more are mapped on their own and unmapped when
/// freed, and an arena gives back free memory above 1 MiB at its top.
pub fn configure_c_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning parameters; called
    // before the Kafka clients start their threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
    }
}

/// One reading, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Resident set size, from `/proc/self/statm`.
    pub rss: u64,
    /// Memory mimalloc holds committed (in use and cached free pages).
    pub rust_committed: u64,
    /// glibc's malloc, all arenas: bytes in allocated chunks (mmapped
    /// chunks included).
    pub c_in_use: u64,
    /// glibc's malloc, all arenas: bytes obtained from the system
    /// (mmapped chunks included); the difference to `c_in_use` is free
    /// memory the arenas keep.
    pub c_held: u64,
}

unsafe extern "C" {
    // Part of the mimalloc library the global allocator links in.
    fn mi_process_info(
        elapsed_msecs: *mut usize,
        user_msecs: *mut usize,
        system_msecs: *mut usize,
        current_rss: *mut usize,
        peak_rss: *mut usize,
        current_commit: *mut usize,
        peak_commit: *mut usize,
        page_faults: *mut usize,
    );
}

/// Reads all four figures now.
pub fn read() -> Reading {
    let (c_in_use, c_held) = c_heap().unwrap_or_default();
    Reading { rss: rss().unwrap_or(0), rust_committed: rust_committed(), c_in_use, c_held }
}

fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

fn rust_committed() -> u64 {
    let mut v = [0usize; 8];
    let [a, b, c, d, e, f, g, h] = &mut v;
    // SAFETY: every pointer is to a live usize, as mi_process_info wants.
    unsafe { mi_process_info(a, b, c, d, e, f, g, h) };
    v[5] as u64
}

/// glibc's `malloc_info` over all arenas: (in use, held).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn c_heap() -> Option<(u64, u64)> {
    let mut buf: *mut libc::c_char = std::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: open_memstream allocates the buffer it writes into; it is
    // read only after fclose, then freed, as its manual says.
    let xml = unsafe {
        let stream = libc::open_memstream(&mut buf, &mut len);
        if stream.is_null() {
            return None;
        }
        let ok = libc::malloc_info(0, stream) == 0;
        libc::fclose(stream);
        let text = ok.then(|| String::from_utf8_lossy(std::slice::from_raw_parts(buf.cast::<u8>(), len)).into_owned());
        libc::free(buf.cast());
        text?
    };
    parse_malloc_info(&xml)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn c_heap() -> Option<(u64, u64)> {
    None
}

/// The process-wide totals that close `malloc_info`'s XML (they follow the
/// per-arena sections, so the last of each tag is the total): free bytes
/// in fast bins and the rest, bytes in mmapped chunks, and bytes the
/// arenas got from the system.
fn parse_malloc_info(xml: &str) -> Option<(u64, u64)> {
    let last = |prefix: &str| -> Option<u64> {
        let at = xml.rfind(prefix)? + prefix.len();
        let rest = &xml[at..];
        let start = rest.find("size=\"")? + 6;
        let end = rest[start..].find('"')? + start;
        rest[start..end].parse().ok()
    };
    let free = last("<total type=\"fast\"")? + last("<total type=\"rest\"")?;
    let mmap = last("<total type=\"mmap\"")?;
    let system = last("<system type=\"current\"")?;
    Some((system.saturating_sub(free) + mmap, system + mmap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_are_the_last_tags() {
        let xml = r#"<malloc version="1">
<heap nr="0"><sizes></sizes><total type="fast" count="0" size="0"/><total type="rest" count="1" size="100"/>
<system type="current" size="1000"/><system type="max" size="1000"/></heap>
<total type="fast" count="2" size="64"/>
<total type="rest" count="3" size="936"/>
<total type="mmap" count="1" size="4096"/>
<system type="current" size="10000"/>
<system type="max" size="12000"/>
<aspace type="total" size="10000"/>
</malloc>"#;
        assert_eq!(parse_malloc_info(xml), Some((10000 - 1000 + 4096, 14096)));
    }

    #[test]
    fn a_reading_sees_both_heaps() {
        let r = read();
        assert!(r.rss > 0 && r.rust_committed > 0, "{r:?}");
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(r.c_held >= r.c_in_use && r.c_held > 0, "{r:?}");
    }
}
