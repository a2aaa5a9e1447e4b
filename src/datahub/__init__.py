"""datahub: the LoRaWAN sensor data platform of Dortmund and Schwerte."""

__version__ = "0.1.0"
