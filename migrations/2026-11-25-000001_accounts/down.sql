DROP TABLE api_tokens;
DROP TABLE email_tokens;
DROP TABLE users;
