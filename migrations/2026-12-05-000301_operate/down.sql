DROP TABLE alert_incidents;
DROP TABLE metric_samples;
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
