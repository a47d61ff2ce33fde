//! A time series as graphite-web's `TimeSeries`: `start`, `end` and `step` in epoch
//! seconds, one value per step (`None` for a gap), and a lazy consolidation
//! (`values_per_point` values become one, by the series' consolidation function, when
//! the series is read).

use std::collections::BTreeMap;

/// How a series is consolidated when several values become one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consolidation {
    /// Mean of the non-null values (Graphite's default).
    Average,
    /// Mean counting nulls as zero.
    AvgZero,
    /// Sum of the non-null values.
    Sum,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// First non-null value.
    First,
    /// Last non-null value.
    Last,
}

/// One series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The name shown to users (`target` in JSON).
    pub name: String,
    /// The path expression this series came from (functions name aggregates after it).
    pub path_expr: String,
    /// Time of the first value.
    pub start: i64,
    /// End of the series (exclusive in practice, as Graphite's).
    pub end: i64,
    /// Seconds between raw values.
    pub step: i64,
    /// Raw values.
    pub values: Vec<Option<f64>>,
    /// Raw values per point when read (1 = no consolidation).
    pub values_per_point: usize,
    /// How consolidated points are computed.
    pub consolidation: Consolidation,
    /// Fraction of non-null values a consolidated point needs.
    pub xff: f64,
    /// Graphite's tags (`name` plus what functions add).
    pub tags: BTreeMap<String, String>,
}

impl Series {
    /// A series named `name` (its own path expression and `name` tag).
    pub fn new(
        name: &str,
        start: i64,
        end: i64,
        step: i64,
        values: Vec<Option<f64>>,
        xff: f64,
    ) -> Self {
        Series {
            name: name.to_string(),
            path_expr: name.to_string(),
            start,
            end,
            step,
            values,
            values_per_point: 1,
            consolidation: Consolidation::Average,
            xff,
            tags: BTreeMap::from([("name".to_string(), name.to_string())]),
        }
    }

    /// A copy with another name and values (Graphite's `series.copy(name, values)`): the
    /// path expression becomes the new name.
    pub fn derive(&self, name: String, values: Vec<Option<f64>>) -> Series {
        Series {
            path_expr: name.clone(),
            name,
            values,
            ..self.clone()
        }
    }

    /// Sets the consolidation factor (Graphite's `consolidate`).
    pub fn consolidate(&mut self, values_per_point: usize) {
        self.values_per_point = values_per_point.max(1);
    }

    /// The values as read: consolidated when `values_per_point > 1`.
    pub fn points(&self) -> Vec<Option<f64>> {
        if self.values_per_point <= 1 {
            return self.values.clone();
        }
        self.values
            .chunks(self.values_per_point)
            .map(|chunk| self.consolidate_chunk(chunk))
            .collect()
    }

    fn consolidate_chunk(&self, chunk: &[Option<f64>]) -> Option<f64> {
        let non_null: Vec<f64> = chunk.iter().flatten().copied().collect();
        let ratio = non_null.len() as f64 / self.values_per_point as f64;
        if non_null.is_empty() || ratio < self.xff {
            return None;
        }
        let sum: f64 = non_null.iter().sum();
        Some(match self.consolidation {
            Consolidation::Average => sum / non_null.len() as f64,
            Consolidation::AvgZero => sum / chunk.len() as f64,
            Consolidation::Sum => sum,
            Consolidation::Max => non_null.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Consolidation::Min => non_null.iter().copied().fold(f64::INFINITY, f64::min),
            Consolidation::First => non_null[0],
            Consolidation::Last => non_null[non_null.len() - 1],
        })
    }

    /// `(value, timestamp)` pairs as graphite-web's `datapoints()`.
    pub fn datapoints(&self) -> Vec<(Option<f64>, i64)> {
        let step = (self.step * self.values_per_point as i64).max(1);
        let times = (self.start..=self.end).step_by(step as usize);
        self.points().into_iter().zip(times).collect()
    }

    /// Time of raw value `i`.
    pub fn time_at(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consolidation_averages_chunks_and_keeps_gaps() {
        let mut s = Series::new(
            "a",
            0,
            60,
            10,
            vec![Some(1.0), Some(3.0), None, None, Some(5.0)],
            0.0,
        );
        s.consolidate(2);
        assert_eq!(s.points(), vec![Some(2.0), None, Some(5.0)]);
        assert_eq!(s.datapoints()[1], (None, 20));
    }
}
