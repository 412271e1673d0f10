-- The databases of the stack (the request store's, `redistill`, is POSTGRES_DB).
CREATE DATABASE prefect;
CREATE DATABASE mlflow;
