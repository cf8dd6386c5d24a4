//! The transformer chain: write in registration order, read in reverse; any step
//! that rejects makes the whole value absent.

use std::sync::Arc;

use super::{Context, Opened, Transformer};
use crate::error::Result;

/// An ordered list of transformers.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    steps: Vec<Arc<dyn Transformer>>,
}

impl Chain {
    /// A chain of these steps, in write order.
    pub fn new(steps: Vec<Arc<dyn Transformer>>) -> Self {
        Self { steps }
    }

    /// True when the chain has no step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies every step in order.
    pub fn write(&self, value: &str, ctx: &Context<'_>) -> Result<String> {
        let mut steps = self.steps.iter();
        let Some(first) = steps.next() else {
            return Ok(value.to_owned());
        };
        let mut current = first.write(value, ctx)?;
        for step in steps {
            current = step.write(&current, ctx)?;
        }
        Ok(current)
    }

    /// Applies every step in reverse; `reissue` is set when any step asked for it.
    pub fn read(&self, value: &str, ctx: &Context<'_>) -> Option<Opened> {
        let mut steps = self.steps.iter().rev();
        let Some(last) = steps.next() else {
            return Some(Opened {
                value: value.to_owned(),
                reissue: false,
            });
        };
        let mut current = last.read(value, ctx)?;
        for step in steps {
            let next = step.read(&current.value, ctx)?;
            current = Opened {
                value: next.value,
                reissue: current.reissue || next.reissue,
            };
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CoreError;

    #[derive(Debug)]
    struct Append(&'static str);

    impl Transformer for Append {
        fn write(&self, value: &str, _ctx: &Context<'_>) -> Result<String> {
            Ok(format!("{value};{}", self.0))
        }
        fn read(&self, value: &str, _ctx: &Context<'_>) -> Option<Opened> {
            value.strip_suffix(&format!(";{}", self.0)).map(|v| Opened {
                value: v.to_owned(),
                reissue: false,
            })
        }
    }

    #[test]
    fn order_matches_ktor() {
        let chain = Chain::new(vec![Arc::new(Append("1")), Arc::new(Append("2"))]);
        let ctx = Context { name: "S", now: 0 };
        assert_eq!(chain.write("0", &ctx).unwrap(), "0;1;2");
        assert_eq!(chain.read("0;1;2", &ctx).unwrap().value, "0");
        assert!(chain.read("0;2;1", &ctx).is_none());
        let _ = CoreError::Config(String::new());
    }
}
