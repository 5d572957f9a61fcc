-- Run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d), as POSTGRES_USER: one database per service.
-- Each service runs its own migrations (kernel tables + its module's) at start-up.
CREATE DATABASE product;
CREATE DATABASE "order";
CREATE DATABASE payment;
CREATE DATABASE patient;
CREATE DATABASE contract;
