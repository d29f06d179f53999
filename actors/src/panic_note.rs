//! Remembers the last panic on each thread, with the tokio task it happened in, so a
//! supervisor can say why a child died.
//!
//! actix does not let a panic pass unnoticed quietly: when tokio catches it, the
//! actor's context is dropped, and that drop still runs the actor's `stopped` hook.
//! A child's guard therefore cannot tell a panic from a stop by its hook alone; it
//! asks here whether the task it is being dropped in has just panicked.

use std::cell::RefCell;
use std::sync::Once;

struct Note {
    task: Option<tokio::task::Id>,
    message: String,
}

thread_local! {
    static LAST: RefCell<Option<Note>> = const { RefCell::new(None) };
}

/// Installs the hook once per process; the previous hook still runs.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic".to_string()
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let note = Note {
                task: tokio::task::try_id(),
                message: format!("{msg}{at}"),
            };
            LAST.with(|l| *l.borrow_mut() = Some(note));
            previous(info);
        }));
    });
}

/// The message of a panic in the task running now, if that task has panicked.
pub fn take_for_current_task() -> Option<String> {
    let task = tokio::task::try_id()?;
    LAST.with(|l| {
        let mut last = l.borrow_mut();
        match last.as_ref() {
            Some(note) if note.task == Some(task) => last.take().map(|n| n.message),
            _ => None,
        }
    })
}
