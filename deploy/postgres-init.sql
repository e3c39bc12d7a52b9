-- Run once by the postgres image on an empty volume: one database per service.
CREATE DATABASE gozon_orders;
CREATE DATABASE gozon_payments;
