DROP TABLE acme_accounts;
DROP INDEX custom_domains_project;
DROP TABLE custom_domains;
