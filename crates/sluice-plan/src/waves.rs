//! Splitting the targeted hosts into waves.
//!
//! Rules (docs/plan-format.md): a wave's `size` is a count, or a percentage of ALL targeted
//! hosts rounded up; every wave gets at least one host while hosts remain; the last declared
//! wave takes every host that remains, whatever its size says; hosts keep inventory order. A
//! wave that would get no host is dropped from the plan and reported as a warning (a plan
//! written for prod also runs on a two-host staging inventory).

use crate::artifact::FailureBudget;
use crate::schema::Amount;

/// How many hosts each declared wave gets, in order (0 for a wave that would be empty).
pub fn split(total: usize, sizes: &[Amount]) -> Vec<usize> {
    let mut remaining = total;
    let mut out = Vec::with_capacity(sizes.len());
    for (i, size) in sizes.iter().enumerate() {
        let wanted = if i + 1 == sizes.len() {
            remaining
        } else {
            let n = match *size {
                Amount::Count(c) => usize::try_from(c).unwrap_or(usize::MAX),
                Amount::Percent(p) => (total * p as usize).div_ceil(100),
            };
            n.max(1)
        };
        let take = wanted.min(remaining);
        remaining -= take;
        out.push(take);
    }
    out
}

/// Failures a wave of `size` hosts tolerates: a count as is, a percentage rounded down.
pub fn max_failed(budget: FailureBudget, size: usize) -> usize {
    match budget {
        FailureBudget::Count(c) => c,
        FailureBudget::Percent(p) => size * p as usize / 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_examples() {
        let plan = [Amount::Count(1), Amount::Percent(25), Amount::Percent(100)];
        assert_eq!(split(10, &plan), vec![1, 3, 6]);
        assert_eq!(split(1, &plan), vec![1, 0, 0]);
        assert_eq!(split(0, &plan), vec![0, 0, 0]);
        // Sizes that do not add up: the last wave takes the rest.
        assert_eq!(split(10, &[Amount::Count(2), Amount::Count(2)]), vec![2, 8]);
        // 0% still gets one host.
        assert_eq!(
            split(10, &[Amount::Percent(0), Amount::Count(1)]),
            vec![1, 9]
        );
        assert_eq!(max_failed(FailureBudget::Percent(10), 50), 5);
        assert_eq!(max_failed(FailureBudget::Percent(10), 9), 0);
        assert_eq!(max_failed(FailureBudget::Count(0), 9), 0);
    }

    fn amount() -> impl Strategy<Value = Amount> {
        prop_oneof![
            (0u64..50).prop_map(Amount::Count),
            (0u32..=100).prop_map(Amount::Percent)
        ]
    }

    proptest! {
        #[test]
        fn every_host_in_exactly_one_wave(total in 0usize..2000, sizes in proptest::collection::vec(amount(), 1..8)) {
            let split = split(total, &sizes);
            prop_assert_eq!(split.len(), sizes.len());
            prop_assert_eq!(split.iter().sum::<usize>(), total);
            let mut before = 0;
            for (i, (&got, size)) in split.iter().zip(&sizes).enumerate() {
                let remaining = total - before;
                if i + 1 == sizes.len() {
                    prop_assert_eq!(got, remaining);
                } else {
                    let wanted = match *size {
                        Amount::Count(c) => c as usize,
                        Amount::Percent(p) => (total * p as usize).div_ceil(100),
                    }.max(1);
                    prop_assert_eq!(got, wanted.min(remaining));
                }
                before += got;
            }
        }
    }
}
