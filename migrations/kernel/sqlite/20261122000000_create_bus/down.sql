DROP TABLE bus_inbox;
DROP TABLE bus_deliveries;
DROP TABLE bus_events;
