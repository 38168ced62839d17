//! The failure budget of one wave.
//!
//! The rule: a wave tolerates `max_failed` failed hosts; the failure that makes the count exceed
//! `max_failed` fails the wave. `max_failed: 0` → the first failure fails the wave; `10%` of a
//! 50-host wave → `max_failed` 5 → the 6th failure fails it. The planner turns a percentage into
//! a count (rounded down) per wave; the executor only sees the count.
//!
//! Once the wave has failed no new host of the wave starts (no overshoot); hosts already running
//! finish, and their failures are still counted and reported.

/// Failures counted against one wave's allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    max_failed: usize,
    failures: usize,
}

impl Budget {
    pub fn new(max_failed: usize) -> Self {
        Budget {
            max_failed,
            failures: 0,
        }
    }

    pub fn record_failure(&mut self) {
        self.failures += 1;
    }

    pub fn failures(&self) -> usize {
        self.failures
    }

    /// True once failures exceed the allowance: the wave has failed.
    pub fn is_spent(&self) -> bool {
        self.failures > self.max_failed
    }
}

/// `max_failed` for a percentage of a wave: rounded down, as the planner computes it.
pub fn max_failed_for_percent(percent: u32, wave_size: usize) -> usize {
    wave_size * percent as usize / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures_to_fail(max_failed: usize) -> usize {
        let mut b = Budget::new(max_failed);
        let mut n = 0;
        while !b.is_spent() {
            b.record_failure();
            n += 1;
        }
        n
    }

    #[test]
    fn zero_budget_fails_on_the_first_failure() {
        assert_eq!(failures_to_fail(0), 1);
    }

    #[test]
    fn ten_percent_of_fifty_fails_on_the_sixth() {
        assert_eq!(max_failed_for_percent(10, 50), 5);
        assert_eq!(failures_to_fail(max_failed_for_percent(10, 50)), 6);
    }

    #[test]
    fn percent_rounds_down() {
        assert_eq!(max_failed_for_percent(10, 9), 0);
        assert_eq!(max_failed_for_percent(25, 10), 2);
    }
}
