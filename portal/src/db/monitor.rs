//! Queries on `metric_samples` (the monitor's series and their rollups) and `alert_incidents`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Text, Timestamptz};

use super::models::{AlertIncident, MetricSample};
use super::schema::{alert_incidents, metric_samples};
use super::DbError;

/// Inserts samples; a sample already there (a rollup written twice) is kept as it was.
pub fn insert(conn: &mut PgConnection, samples: &[MetricSample]) -> Result<usize, DbError> {
    let mut n_inserted = 0;
    // PostgreSQL takes at most 65535 parameters per statement; five per row.
    for chunk in samples.chunks(10_000) {
        n_inserted += diesel::insert_into(metric_samples::table).values(chunk).on_conflict_do_nothing().execute(conn)?;
    }
    Ok(n_inserted)
}

/// The time of the newest sample of `resolution_secs`.
pub fn newest(conn: &mut PgConnection, resolution_secs: i32) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(metric_samples::table
        .filter(metric_samples::resolution_secs.eq(resolution_secs))
        .select(diesel::dsl::max(metric_samples::at))
        .first(conn)?)
}

/// Samples of `resolution_secs` with `from <= at < to`, of one series or all of them.
pub fn between(
    conn: &mut PgConnection,
    resolution_secs: i32,
    series: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<MetricSample>, DbError> {
    let mut query = metric_samples::table
        .filter(metric_samples::resolution_secs.eq(resolution_secs))
        .filter(metric_samples::at.ge(from))
        .filter(metric_samples::at.lt(to))
        .into_boxed();
    if let Some(series) = series {
        query = query.filter(metric_samples::series.eq(series.to_owned()));
    }
    Ok(query.order((metric_samples::series, metric_samples::metric, metric_samples::at)).select(MetricSample::as_select()).load(conn)?)
}

/// Deletes samples of `resolution_secs` older than `before`; returns how many.
pub fn prune(conn: &mut PgConnection, resolution_secs: i32, before: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(diesel::delete(
        metric_samples::table.filter(metric_samples::resolution_secs.eq(resolution_secs)).filter(metric_samples::at.lt(before)),
    )
    .execute(conn)?)
}

/// One app metric summed up over a range: the mean, the sum and the number of samples.
#[derive(Debug, Clone, QueryableByName)]
pub struct MetricSummary {
    #[diesel(sql_type = Text)]
    pub series: String,
    #[diesel(sql_type = Text)]
    pub metric: String,
    #[diesel(sql_type = Double)]
    pub mean: f64,
    #[diesel(sql_type = Double)]
    pub total: f64,
    #[diesel(sql_type = BigInt)]
    pub n_samples: i64,
}

/// Every series but `host` summarised per metric over `at >= from`.
pub fn app_summaries(conn: &mut PgConnection, resolution_secs: i32, from: DateTime<Utc>) -> Result<Vec<MetricSummary>, DbError> {
    Ok(diesel::sql_query(
        "SELECT series, metric, avg(value) AS mean, sum(value) AS total, count(*) AS n_samples FROM metric_samples \
         WHERE resolution_secs = $1 AND at >= $2 AND series <> 'host' GROUP BY series, metric ORDER BY series, metric",
    )
    .bind::<Integer, _>(resolution_secs)
    .bind::<Timestamptz, _>(from)
    .load(conn)?)
}

pub fn open_incidents(conn: &mut PgConnection) -> Result<Vec<AlertIncident>, DbError> {
    Ok(alert_incidents::table
        .filter(alert_incidents::cleared_at.is_null())
        .order(alert_incidents::opened_at.asc())
        .select(AlertIncident::as_select())
        .load(conn)?)
}

pub fn open_incident(conn: &mut PgConnection, key: &str, opened_at: DateTime<Utc>, reason: &str) -> Result<(), DbError> {
    diesel::insert_into(alert_incidents::table)
        .values((alert_incidents::key.eq(key), alert_incidents::opened_at.eq(opened_at), alert_incidents::reason.eq(reason)))
        .execute(conn)?;
    Ok(())
}

/// Clears the open incident of `key`; `false` when none was open (another sampler cleared it).
pub fn clear_incident(conn: &mut PgConnection, key: &str, cleared_at: DateTime<Utc>) -> Result<bool, DbError> {
    let n_cleared =
        diesel::update(alert_incidents::table.filter(alert_incidents::key.eq(key)).filter(alert_incidents::cleared_at.is_null()))
            .set(alert_incidents::cleared_at.eq(cleared_at))
            .execute(conn)?;
    Ok(n_cleared > 0)
}

pub fn is_open(conn: &mut PgConnection, key: &str) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        alert_incidents::table.filter(alert_incidents::key.eq(key)).filter(alert_incidents::cleared_at.is_null()),
    ))
    .get_result(conn)?)
}
