//! An r2d2 connection manager that retires connections which failed at the
//! connection level. diesel's own manager only notices a broken transaction,
//! so after a Postgres restart every pooled connection would fail forever;
//! checking each connection on checkout instead would cost a round trip per
//! query.

use diesel::pg::PgConnection;
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::{Connection, ConnectionError};

pub struct TrackedConnection {
    pub conn: PgConnection,
    /// Set when a query failed because the connection itself is gone.
    pub broken: bool,
}

pub struct PgManager {
    url: String,
}

impl PgManager {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("connecting to Postgres failed")]
    Connect(#[from] ConnectionError),
    #[error("the connection check failed")]
    Check(#[from] diesel::result::Error),
}

impl ManageConnection for PgManager {
    type Connection = TrackedConnection;
    type Error = PoolError;

    fn connect(&self) -> Result<Self::Connection, Self::Error> {
        Ok(TrackedConnection {
            conn: PgConnection::establish(&self.url)?,
            broken: false,
        })
    }

    fn is_valid(&self, tracked: &mut Self::Connection) -> Result<(), Self::Error> {
        Ok(tracked.conn.ping()?)
    }

    fn has_broken(&self, tracked: &mut Self::Connection) -> bool {
        tracked.broken || std::thread::panicking() || tracked.conn.is_broken()
    }
}
