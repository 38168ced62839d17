//! The allocator's settings that differ from mimalloc's defaults, set when `sluice` starts.
//!
//! mimalloc v3 keeps the pages it freed committed for `purge_delay` (1,000 ms) before it
//! returns them to the kernel, in case they are reused. `sluice apply` frees in bursts (a wave's
//! hundreds of SSH handshakes, then their steps), and the pages freed by one burst still counted
//! in RSS while the next one allocated: on 200 sshd hosts the peak was ~1–2.5 MiB lower with
//! the delay at 0 (docs/benchmarks.md, "Where the memory per SSH host goes", issue 14), at no
//! measurable cost in wall time (a page returned and reused costs a page fault). The delay is
//! read on every purge, so setting it once `main` runs takes effect, unlike the options mimalloc
//! reads while it reserves its first arena before `main` (huge pages, eager commit: those are
//! build features, see the workspace's Cargo.toml). `MIMALLOC_PURGE_DELAY` in the environment
//! still wins, so operators keep mimalloc's own knob.

use std::ffi::{c_int, c_long};

/// `mi_option_purge_delay`'s place in mimalloc v3's `mi_option_t` (include/mimalloc.h);
/// libmimalloc-sys does not name it. The test below fails if a mimalloc upgrade moves it.
const MI_OPTION_PURGE_DELAY: c_int = 15;

// mimalloc's own C functions, linked through the `mimalloc` crate's libmimalloc-sys.
#[allow(unsafe_code)]
unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// Freed pages go back to the kernel at once, unless the environment says otherwise.
pub fn configure() {
    let set_by_operator = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if !set_by_operator {
        set_purge_delay(0);
    }
}

#[allow(unsafe_code)]
fn set_purge_delay(ms: c_long) {
    // SAFETY: mi_option_set stores a value in mimalloc's static option table (a plain store of
    // a `long`, read by later purges); it takes no pointers and is valid at any time, from any
    // thread, before or after allocations. The option index is checked by the test below.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, ms) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index is mimalloc's purge delay: its documented default (1,000 ms in v3), then what
    /// `set_purge_delay` stored.
    #[test]
    #[allow(unsafe_code)]
    fn the_option_set_is_mimallocs_purge_delay() {
        // SAFETY: mi_option_get reads mimalloc's static option table; no pointers.
        let default = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(
                default, 1000,
                "option {MI_OPTION_PURGE_DELAY} is not purge_delay"
            );
        }
        set_purge_delay(7);
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 7);
        set_purge_delay(default);
    }
}
