"""The operator's side of the hub: device and gateway health, alert rules, alarms and their
notifications."""
