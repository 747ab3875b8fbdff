"""Result formats the service serves: FHIR, and a series' slice sheets."""
