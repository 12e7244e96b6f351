ALTER TABLE projects DROP CONSTRAINT projects_live_revision;
DROP TABLE revisions;
DROP TABLE sealed_secrets;
DROP TABLE project_env;
DROP TABLE projects;
