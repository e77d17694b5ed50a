-- The databases of the layout besides POSTGRES_DB (alphatide_airflow): MLflow's and the trading store's.
CREATE DATABASE alphatide_mlflow;
CREATE DATABASE alphatide_trading;
