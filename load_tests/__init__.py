"""Locust load tests for both servers, directly and through the gateway, and the report they produce."""
