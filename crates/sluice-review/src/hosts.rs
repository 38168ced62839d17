//! Host lists for people: runs of consecutive hosts (in plan order) written `first … last`.
//!
//! Nothing is left out: `web-2 … web-12` means every host from web-2 to web-12 in the order of
//! the review's host list, which every human format prints in full. JSON keeps every name.

use std::collections::HashMap;

use crate::model::Review;

/// The plan order of the hosts, to find runs in any list of names.
pub struct HostOrder {
    position: HashMap<String, usize>,
}

impl HostOrder {
    pub fn of(review: &Review) -> Self {
        HostOrder {
            position: review
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (h.name.clone(), i))
                .collect(),
        }
    }

    /// The order of `names`.
    pub fn from_names(names: &[String]) -> Self {
        HostOrder {
            position: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
        }
    }

    /// The runs of `names`: each run a list of consecutive hosts, in the order given. A name
    /// the order does not know starts a run of its own.
    pub fn runs<'a>(&self, names: &'a [String]) -> Vec<&'a [String]> {
        let mut runs = Vec::new();
        let mut start = 0;
        for i in 1..=names.len() {
            let consecutive = i < names.len()
                && matches!(
                    (self.position.get(&names[i - 1]), self.position.get(&names[i])),
                    (Some(a), Some(b)) if *b == a + 1
                );
            if !consecutive {
                runs.push(&names[start..i]);
                start = i;
            }
        }
        runs
    }

    /// `a, b, c … k, m` with `separator` for the ellipsis: runs of three or more hosts are
    /// written first and last.
    pub fn compact_with(&self, names: &[String], ellipsis: &str) -> String {
        self.runs(names)
            .iter()
            .map(|run| match run {
                [] => String::new(),
                [one] => one.clone(),
                [a, b] => format!("{a}, {b}"),
                [first, .., last] => format!("{first}{ellipsis}{last}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// [`HostOrder::compact_with`] with ` … `.
    pub fn compact(&self, names: &[String]) -> String {
        self.compact_with(names, " … ")
    }
}

/// `1 host`, `3 hosts`.
pub fn count(n: usize) -> String {
    if n == 1 {
        "1 host".into()
    } else {
        format!("{n} hosts")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(n: usize) -> (HostOrder, Vec<String>) {
        let names: Vec<String> = (1..=n).map(|i| format!("web-{i}")).collect();
        let position = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        (HostOrder { position }, names)
    }

    #[test]
    fn runs_of_three_or_more_are_written_first_and_last() {
        let (o, all) = order(12);
        assert_eq!(o.compact(&all[1..]), "web-2 … web-12");
        let picked: Vec<String> = [0, 1, 3, 4, 5, 9].iter().map(|&i| all[i].clone()).collect();
        assert_eq!(o.compact(&picked), "web-1, web-2, web-4 … web-6, web-10");
        assert_eq!(o.compact(&all[..1]), "web-1");
        assert_eq!(o.compact(&[]), "");
    }
}
