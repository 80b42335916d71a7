"""Who may do what: API tokens with roles, and the permissions each role grants."""
