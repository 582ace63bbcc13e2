//! The claims an example makes, each checked on the run that made it, so that the same claim
//! can be counted over several seeds ("held in 4 of 5").
//!
//! A claim is a sentence about the mechanism ("test loss rises after its minimum") together
//! with the number it is about and the bound that number must clear. The sentence never
//! quotes a seed's own number: the number is printed next to it, and over several seeds as a
//! range. `tests/claims.rs` asserts every claim at several seeds; the bounds, and why they
//! are what they are, are written next to each claim in the example's `claims()`.

use std::fmt;

/// How a claim's number is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A plain number with this many decimals.
    Decimals(usize),
    /// A fraction printed as a percentage with one decimal ("12.5%").
    Percent,
    /// A relative change printed as a signed percentage ("+24%").
    Change,
    /// A ratio printed with two decimals and an "x" ("0.61x").
    Ratio,
    /// A quantity spanning decades, in scientific notation ("3.3e-9").
    Scientific,
    /// A count (epochs, units), printed as an integer; values above the run's length mean
    /// "never".
    Count,
}

impl Unit {
    /// `value` in this unit.
    pub fn format(self, value: f64) -> String {
        if !value.is_finite() {
            return format!("{value}");
        }
        match self {
            Unit::Decimals(d) => format!("{value:.d$}"),
            Unit::Percent => format!("{:.1}%", 100.0 * value),
            Unit::Change => format!("{:+.0}%", 100.0 * value),
            Unit::Ratio => format!("{value:.2}x"),
            Unit::Scientific => format!("{value:.1e}"),
            Unit::Count => format!("{value:.0}"),
        }
    }
}

/// Which side of its bound a claim's number must be on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// The number must be greater than the bound.
    Above,
    /// The number must be smaller than the bound.
    Below,
}

/// One claim, checked on one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// A short name, the same at every seed (how claims are matched across seeds).
    pub id: &'static str,
    /// The sentence, true of the mechanism, without any one run's numbers.
    pub statement: String,
    /// What the number measures ("test loss rise after its minimum").
    pub measure: &'static str,
    /// The number this run measured.
    pub value: f64,
    /// The bound it must clear.
    pub bound: f64,
    /// Above or below the bound.
    pub compare: Compare,
    /// How the number and the bound are printed.
    pub unit: Unit,
    /// True for a claim the tests assert at every seed; false for an observation that holds
    /// only at some seeds, printed with how often it held and never asserted.
    pub asserted: bool,
}

impl Claim {
    /// A claim that `value` (what `measure` names) is above `bound`.
    pub fn above(
        id: &'static str,
        statement: impl Into<String>,
        measure: &'static str,
        value: f64,
        bound: f64,
        unit: Unit,
    ) -> Self {
        Claim {
            id,
            statement: statement.into(),
            measure,
            value,
            bound,
            compare: Compare::Above,
            unit,
            asserted: true,
        }
    }

    /// A claim that `value` (what `measure` names) is below `bound`.
    pub fn below(
        id: &'static str,
        statement: impl Into<String>,
        measure: &'static str,
        value: f64,
        bound: f64,
        unit: Unit,
    ) -> Self {
        Claim {
            compare: Compare::Below,
            ..Claim::above(id, statement, measure, value, bound, unit)
        }
    }

    /// The same comparison as an observation: printed with how often it held, not asserted
    /// (for a statement that holds at some seeds only).
    pub fn observation(mut self) -> Self {
        self.asserted = false;
        self
    }

    /// Whether this run's number clears the bound (a NaN never does).
    pub fn held(&self) -> bool {
        match self.compare {
            Compare::Above => self.value > self.bound,
            Compare::Below => self.value < self.bound,
        }
    }

    /// "> 1.10x" or "< 4": the bound as printed.
    pub fn bound_text(&self) -> String {
        let sign = match self.compare {
            Compare::Above => ">",
            Compare::Below => "<",
        };
        format!("{sign} {}", self.unit.format(self.bound))
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match (self.asserted, self.held()) {
            (true, true) => "held",
            (true, false) => "FAILED",
            (false, true) => "observed: yes",
            (false, false) => "observed: no",
        };
        write!(
            f,
            "[{mark}] {} ({} {}, {} {})",
            self.statement,
            self.measure,
            self.unit.format(self.value),
            if self.asserted { "needs" } else { "asks" },
            self.bound_text()
        )
    }
}

/// Writes the claims of one run, one per line, indented under a "Claims:" heading.
pub fn write_claims(f: &mut fmt::Formatter<'_>, claims: &[Claim]) -> fmt::Result {
    if claims.is_empty() {
        return Ok(());
    }
    writeln!(f, "  Claims (this seed):")?;
    for claim in claims {
        writeln!(f, "    {claim}")?;
    }
    Ok(())
}

/// One claim over several seeds: how often it held, and the range of its number.
#[derive(Clone, Debug, PartialEq)]
pub struct Tally {
    /// The claim as made at the first seed (its statement, measure, bound and unit).
    pub claim: Claim,
    /// The seeds it was checked at, in order.
    pub seeds: Vec<u64>,
    /// Its number at each of those seeds.
    pub values: Vec<f64>,
    /// The seeds at which it did not hold.
    pub failed_at: Vec<u64>,
}

impl Tally {
    /// Seeds at which the claim held.
    pub fn held_count(&self) -> usize {
        self.seeds.len() - self.failed_at.len()
    }

    /// The smallest and largest number over the seeds (NaNs ignored).
    pub fn range(&self) -> Option<(f64, f64)> {
        self.values
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .fold(None, |acc, v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.claim;
        let range = match self.range() {
            Some((lo, hi)) if lo == hi => c.unit.format(lo),
            Some((lo, hi)) => format!("{} to {}", c.unit.format(lo), c.unit.format(hi)),
            None => "-".to_string(),
        };
        let kind = if c.asserted { "" } else { "observation, " };
        write!(
            f,
            "{kind}held in {} of {}: {} ({} {range}, {} {})",
            self.held_count(),
            self.seeds.len(),
            c.statement,
            c.measure,
            if c.asserted { "needs" } else { "asks" },
            c.bound_text()
        )?;
        if !self.failed_at.is_empty() {
            let seeds: Vec<String> = self.failed_at.iter().map(u64::to_string).collect();
            write!(f, "; failed at seed {}", seeds.join(", "))?;
        }
        Ok(())
    }
}

/// Counts each claim over the runs at `seeds` (`runs[i]` made at `seeds[i]`), in the order of
/// the first run's claims. A claim missing from a run counts as failed there.
pub fn tally(seeds: &[u64], runs: &[Vec<Claim>]) -> Vec<Tally> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|claim| {
            let mut tally = Tally {
                claim: claim.clone(),
                seeds: seeds.to_vec(),
                values: Vec::new(),
                failed_at: Vec::new(),
            };
            for (seed, run) in seeds.iter().zip(runs) {
                match run.iter().find(|c| c.id == claim.id) {
                    Some(c) => {
                        tally.values.push(c.value);
                        if !c.held() {
                            tally.failed_at.push(*seed);
                        }
                    }
                    None => {
                        tally.values.push(f64::NAN);
                        tally.failed_at.push(*seed);
                    }
                }
            }
            tally
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rise(value: f64) -> Claim {
        Claim::above("rise", "test loss rises", "rise", value, 0.05, Unit::Change)
    }

    #[test]
    fn a_claim_holds_only_on_the_right_side_of_its_bound() {
        assert!(rise(0.06).held());
        assert!(!rise(0.05).held());
        assert!(!rise(f64::NAN).held());
        let below = Claim::below("gap", "gap shrinks", "ratio", 0.7, 0.9, Unit::Ratio);
        assert!(below.held());
        let at = |value: f64| Claim {
            value,
            ..below.clone()
        };
        assert!(!at(0.95).held());
        // A number equal to its bound does not clear it, on either side.
        assert!(!at(0.9).held());
    }

    #[test]
    fn claims_are_written_one_per_line_under_a_heading() {
        struct Claims(Vec<Claim>);
        impl fmt::Display for Claims {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_claims(f, &self.0)
            }
        }
        let text = Claims(vec![rise(0.2), rise(0.01)]).to_string();
        assert_eq!(
            text,
            "  Claims (this seed):\n    [held] test loss rises (rise +20%, needs > +5%)\n    \
             [FAILED] test loss rises (rise +1%, needs > +5%)\n"
        );
        assert_eq!(Claims(Vec::new()).to_string(), "");
    }

    #[test]
    fn a_range_of_one_value_is_printed_once() {
        let tallies = tally(&[1, 2], &[vec![rise(0.2)], vec![rise(0.2)]]);
        assert_eq!(
            tallies[0].to_string(),
            "held in 2 of 2: test loss rises (rise +20%, needs > +5%)"
        );
    }

    #[test]
    fn a_tally_counts_the_seeds_and_names_the_failures() {
        let tallies = tally(
            &[1, 2, 3],
            &[vec![rise(0.2)], vec![rise(0.01)], vec![rise(0.3)]],
        );
        assert_eq!(tallies.len(), 1);
        let t = &tallies[0];
        assert_eq!(t.held_count(), 2);
        assert_eq!(t.failed_at, vec![2]);
        assert_eq!(t.range(), Some((0.01, 0.3)));
        assert_eq!(
            t.to_string(),
            "held in 2 of 3: test loss rises (rise +1% to +30%, needs > +5%); failed at seed 2"
        );
    }

    #[test]
    fn an_observation_is_counted_but_marked_as_not_asserted() {
        let seen = rise(0.2).observation();
        assert!(seen.held() && !seen.asserted);
        assert!(seen.to_string().starts_with("[observed: yes]"));
        assert!(
            rise(0.0)
                .observation()
                .to_string()
                .starts_with("[observed: no]")
        );
        let tallies = tally(
            &[1, 2],
            &[vec![seen.clone()], vec![rise(0.0).observation()]],
        );
        assert!(
            tallies[0]
                .to_string()
                .starts_with("observation, held in 1 of 2:")
        );
    }

    #[test]
    fn a_claim_missing_from_a_run_fails_there() {
        let tallies = tally(&[1, 2], &[vec![rise(0.2)], vec![]]);
        assert_eq!(tallies[0].failed_at, vec![2]);
        assert_eq!(tallies[0].range(), Some((0.2, 0.2)));
    }
}
