"""People, the platform identities that resolve to them, and their scoped roles."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint, func, literal_column
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow
from models.community import Building, Grid, Household


class Role(enum.StrEnum):
    RESIDENT = "resident"
    BUILDING_HEAD = "building_head"
    GRID_WORKER = "grid_worker"
    # Who fixes what residents report (bot.toml [[report.categories]] owner), and one level up.
    PROPERTY = "property"
    PROPERTY_HEAD = "property_head"
    DEPARTMENT = "department"  # scoped by `department`, the name in bot.toml
    DEPARTMENT_HEAD = "department_head"
    STAFF = "staff"
    ADMIN = "admin"


class Person(Base):
    __tablename__ = "person"

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str | None] = mapped_column(String(10), default=None)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), index=True)
    # visitor (not registered) | pending (waits for the building head) | active | rejected.
    status: Mapped[str] = mapped_column(String(16), default="visitor")
    # The app they wrote from last (an Identity's channel): someone who linked two apps is
    # told things where they are now.
    last_channel: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    household: Mapped[Household | None] = relationship()
    identities: Mapped[list[Identity]] = relationship(back_populates="person")
    roles: Mapped[list[RoleAssignment]] = relationship(back_populates="person")


class Identity(Base):
    """(channel, external id) → person, so one person can later link Telegram and WeChat."""

    __tablename__ = "identity"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(64), default=None)
    # The private chat we can reach this person in; None until they message us privately.
    private_chat_id: Mapped[str | None] = mapped_column(String(64), default=None)

    person: Mapped[Person] = relationship(back_populates="identities")


class RoleAssignment(Base):
    __tablename__ = "role_assignment"
    # One row per role and scope. Scope columns are NULL for an unscoped role, and NULLs never
    # compare equal in a unique constraint, so the index compares them through COALESCE (the
    # same spelling works on SQLite and PostgreSQL).
    __table_args__ = (
        Index(
            "uq_role_assignment_scope",
            "person_id",
            "role",
            func.coalesce(literal_column("building_id"), 0),
            func.coalesce(literal_column("grid_id"), 0),
            func.coalesce(literal_column("department"), ""),
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])
    )
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id"), default=None)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id"), default=None)
    department: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    person: Mapped[Person] = relationship(back_populates="roles")
    building: Mapped[Building | None] = relationship()
    grid: Mapped[Grid | None] = relationship()
