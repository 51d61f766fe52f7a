//! Builders for link reports.

use crate::{Health, Kv, LinkReport};

/// A link report under construction.
#[derive(Debug, Clone)]
pub struct Report(LinkReport);

impl Report {
    fn new(id: &str, health: Health, summary: impl Into<String>) -> Self {
        Self(LinkReport {
            id: id.into(),
            health,
            summary: summary.into(),
            evidence: Vec::new(),
            repairable: false,
        })
    }

    pub fn healthy(id: &str, summary: impl Into<String>) -> Self {
        Self::new(id, Health::Healthy, summary)
    }

    pub fn broken(id: &str, summary: impl Into<String>) -> Self {
        Self::new(id, Health::Broken, summary)
    }

    pub fn unknown(id: &str, summary: impl Into<String>) -> Self {
        Self::new(id, Health::Unknown, summary)
    }

    /// Mark the link as fixable by `repair`.
    pub fn repairable(mut self) -> Self {
        self.0.repairable = true;
        self
    }

    pub fn evidence(mut self, key: &str, value: impl ToString) -> Self {
        self.0.evidence.push(Kv {
            key: key.into(),
            value: value.to_string(),
        });
        self
    }

    /// Adds the evidence only when there is a value.
    pub fn evidence_opt(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.evidence(key, v),
            None => self,
        }
    }

    pub fn health(&self) -> Health {
        self.0.health
    }

    pub fn build(self) -> LinkReport {
        self.0
    }
}

impl From<Report> for LinkReport {
    fn from(r: Report) -> Self {
        r.0
    }
}
