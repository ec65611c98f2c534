"""Joining the community and deciding registrations (DESIGN.md "Use cases live in services").

- `access`: who may list and decide registrations, for which buildings, and who is asked;
- `scopes`: which scope each role needs, for `linli admin`, invites and whatever grants next;
- `usecases`: redeeming an invite, joining, listing and deciding registrations.
"""
