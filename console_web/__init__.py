"""What people see in a browser: the analyst console, the owner portal and public pages."""
