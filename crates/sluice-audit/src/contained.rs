//! Panics of the store engine on a damaged file, turned into errors without a word on stderr.
//!
//! redb checks a file's integrity when asked to, but promises errors rather than panics only for
//! the damage its checks know about; a file damaged in another way can still make it panic (an
//! `unreachable!`, a slice out of bounds). Whatever the store engine does while it opens or checks
//! a file therefore runs in [`contained`]: a panic becomes an [`EnginePanic`] the caller reports
//! as a damaged store, and the panic hook prints nothing for it (the operator sees the clear
//! error, not `thread 'main' panicked`). Panics anywhere else are printed as usual.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs a contained call.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    /// What the last contained panic said, for the error.
    static MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The store engine panicked; `message` is what it said (with its location).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the store engine failed while reading the file ({message})")]
pub struct EnginePanic {
    pub message: String,
}

/// Runs `f`; a panic inside it is returned as an [`EnginePanic`] and not printed.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, EnginePanic> {
    install_hook();
    let outer = CONTAINED.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    result.map_err(|payload| {
        let message = MESSAGE
            .with(|m| m.borrow_mut().take())
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        EnginePanic { message }
    })
}

/// Wraps the process's panic hook once: quiet for contained panics, unchanged for the others.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if CONTAINED.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let text = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{text}{location}")));
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_is_an_error_with_its_message() {
        let result: Result<(), EnginePanic> = contained(|| unreachable!("page type 7"));
        let err = result.err().map(|e| e.message).unwrap_or_default();
        assert!(err.contains("page type 7"), "{err}");
        assert!(err.contains("contained.rs"), "{err}");
    }

    #[test]
    fn a_value_passes_through() {
        assert_eq!(contained(|| 41 + 1), Ok(42));
    }
}
