//! The only way the harness waits: poll with a deadline and report what was last seen,
//! so a failing wait says why instead of hanging or saying "timeout".

use anyhow::{Result, bail};
use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every `every` until it returns `Ok(Some(v))` or `limit` has passed.
/// `Ok(None)` means "not yet"; an `Err` is remembered as the last observation and
/// polling continues (transient errors are normal while things restart).
pub async fn poll_until<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        let remaining = limit.saturating_sub(started.elapsed());
        let last =
            match tokio::time::timeout(remaining.max(Duration::from_millis(1)), probe()).await {
                Ok(Ok(Some(v))) => return Ok(v),
                Ok(Ok(None)) => "condition not met yet".to_string(),
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => "probe itself ran past the deadline".to_string(),
            };
        if started.elapsed() >= limit {
            bail!(
                "timed out after {:.1}s waiting for {what}; last observation: {last}",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(every.min(limit.saturating_sub(started.elapsed()))).await;
    }
}

/// Like [`poll_until`] for a plain predicate over a value, reporting the last value seen.
pub async fn poll_value<T, F, Fut, P>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut read: F,
    accept: P,
) -> Result<T>
where
    T: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
    P: Fn(&T) -> bool,
{
    let started = Instant::now();
    loop {
        let remaining = limit.saturating_sub(started.elapsed());
        let last = match tokio::time::timeout(remaining.max(Duration::from_millis(1)), read()).await
        {
            Ok(Ok(v)) if accept(&v) => return Ok(v),
            Ok(Ok(v)) => format!("{v:?}"),
            Ok(Err(e)) => format!("error: {e:#}"),
            Err(_) => "read ran past the deadline".to_string(),
        };
        if started.elapsed() >= limit {
            bail!(
                "timed out after {:.1}s waiting for {what}; last value: {last}",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(every.min(limit.saturating_sub(started.elapsed()))).await;
    }
}

/// Bounds one engine API call and names it in the error.
pub(crate) async fn bounded<T, E, Fut>(what: &str, limit: Duration, fut: Fut) -> Result<T>
where
    Fut: Future<Output = std::result::Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context(what.to_string())),
        Err(_) => bail!("{what}: no answer within {limit:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_as_soon_as_the_condition_holds() {
        let mut n = 0;
        let v = poll_until(
            "n to reach 3",
            Duration::from_secs(2),
            Duration::from_millis(1),
            || {
                n += 1;
                let now = n;
                async move { Ok((now >= 3).then_some(now)) }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_last_observation() {
        let err = poll_until::<(), _, _>(
            "never",
            Duration::from_millis(50),
            Duration::from_millis(10),
            || async { anyhow::bail!("still broken") },
        )
        .await
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("waiting for never") && msg.contains("still broken"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn poll_value_reports_the_last_value() {
        let err = poll_value(
            "x > 5",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || async { Ok(4) },
            |v| *v > 5,
        )
        .await
        .unwrap_err();
        assert!(format!("{err:#}").contains("last value: 4"));
    }
}
