DROP TABLE outbound_mail;
