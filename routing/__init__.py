"""The MQTT contract with the contact centre's routing core, and a reference router."""
