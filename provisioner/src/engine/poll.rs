//! Waiting for something outside kiln to become true (a host key written by
//! cloud-init, a node reported healthy, a loss noticed): look, pause, look
//! again, within a deadline, remembering what the last look saw so a
//! timeout can say it.

use std::future::Future;
use std::time::Duration;

// tokio's clock, so tests can pause it; the same as std's at run time.
use tokio::time::Instant;

/// What one look found.
pub enum Look<T> {
    Ready(T),
    /// Not yet; what was seen, for the timeout's message.
    Waiting(String),
}

/// The pause between looks: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Pause {
    pub first: Duration,
    pub max: Duration,
}

impl Pause {
    /// The same pause every time.
    pub const fn every(pause: Duration) -> Self {
        Self {
            first: pause,
            max: pause,
        }
    }
}

/// The deadline passed: how long was waited and what the last look saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub waited: Duration,
    pub last: String,
}

/// Looks until `look` is ready or `patience` is spent; no look starts once
/// the next pause would end past the deadline.
pub async fn poll_until<T, F, Fut>(
    patience: Duration,
    pause: Pause,
    mut look: F,
) -> Result<T, Expired>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Look<T>>,
{
    let started = Instant::now();
    let mut next = pause.first;
    loop {
        let last = match look().await {
            Look::Ready(value) => return Ok(value),
            Look::Waiting(seen) => seen,
        };
        if started.elapsed() + next >= patience {
            return Err(Expired {
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(next).await;
        next = (next * 2).min(pause.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_on_the_third_look_after_growing_pauses() {
        let started = tokio::time::Instant::now();
        let mut looks = 0;
        let value = poll_until(
            Duration::from_secs(60),
            Pause {
                first: Duration::from_secs(1),
                max: Duration::from_secs(3),
            },
            || {
                looks += 1;
                let seen = looks;
                async move {
                    if seen == 3 {
                        Look::Ready(seen)
                    } else {
                        Look::Waiting(format!("look {seen}"))
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(value, 3);
        assert_eq!(started.elapsed(), Duration::from_secs(1 + 2));
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_reports_the_last_look_and_never_oversleeps() {
        let mut looks = 0;
        let expired = poll_until(
            Duration::from_secs(10),
            Pause::every(Duration::from_secs(3)),
            || {
                looks += 1;
                let seen = looks;
                async move { Look::<()>::Waiting(format!("look {seen}")) }
            },
        )
        .await
        .unwrap_err();
        // Looks at 0, 3, 6 and 9; a pause from 9 would end past 10.
        assert_eq!(expired.last, "look 4");
        assert_eq!(expired.waited, Duration::from_secs(9));
    }
}
