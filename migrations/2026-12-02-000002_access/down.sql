DROP TABLE quotas;
DROP INDEX projects_group;
ALTER TABLE projects DROP COLUMN group_id;
DROP TABLE group_invitations;
DROP TABLE group_members;
DROP TABLE groups;
ALTER TABLE projects DROP COLUMN visibility;
