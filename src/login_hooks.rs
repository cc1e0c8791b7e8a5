//! Places in a passkey login where a test can step in: to remove the
//! passkey, stop the database or walk away at a chosen moment, which no
//! real client or server can be made to do on cue. Nothing is installed in
//! a running service; each place then costs one uncontended lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Where the login is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStep {
    /// Kratos has minted the session; nothing of it is recorded yet but the
    /// `minting` record.
    Minted,
}

type Hook = Arc<dyn Fn(LoginStep) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Default)]
pub struct LoginHooks {
    hook: Mutex<Option<Hook>>,
}

impl LoginHooks {
    /// Runs `hook` (and waits for it) at every step of every login.
    pub fn install<F, Fut>(&self, hook: F)
    where
        F: Fn(LoginStep) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Arc::new(move |step| Box::pin(hook(step)));
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    pub async fn reached(&self, step: LoginStep) {
        let hook = self.hook.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hook) = hook {
            hook(step).await;
        }
    }
}
