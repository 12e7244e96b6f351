DROP TABLE webhook_deliveries;
DROP TABLE git_sources;
