//! Whole-switch-state assertions over `portcullis_dataplane::dump`: after a step,
//! exactly these facts changed — and on failure, the whole state is printed.

use portcullis_dataplane::dump::{SwitchState, changes, dump};
use portcullis_dataplane::{Switch, Timestamp};

/// Asserts that from `before` to the state of `sw` at `now`, exactly the lines
/// `expected` changed (`- fact` gone, `+ fact` new, in dump order, as
/// `dump::changes` lists them). Returns the new state, for the next step.
#[track_caller]
pub fn assert_changed(
    before: &SwitchState,
    sw: &Switch,
    now: Timestamp,
    expected: &[&str],
) -> SwitchState {
    let after = dump(sw, now);
    let got = changes(before, &after);
    assert_eq!(got, expected, "\nthe whole state now:\n{after}");
    after
}
