"""The local stack: PancScan's real handlers against moto in server mode, on one machine."""
