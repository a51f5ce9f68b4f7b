"""edgeloop: a runtime for intelligent real-time IoT at the cloud edge."""
