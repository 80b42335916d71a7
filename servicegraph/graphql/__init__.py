"""The strawberry GraphQL schema, composed from one module per domain area."""
