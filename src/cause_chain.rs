//! Errors as the logs show them: the error and every cause below it. Used
//! by the HTTP boundary and the background workers alike, so it sits below
//! both.

/// Formats an error with every `source()` below it, for the logs.
pub struct CauseChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Debug for CauseChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut current = self.0.source();
        while let Some(cause) = current {
            write!(f, ": {cause}")?;
            current = cause.source();
        }
        Ok(())
    }
}
