DROP TABLE payment_gateway_sim_operations;
DROP TABLE payment_refunds;
