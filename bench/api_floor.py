"""The floor for `bench/api_throughput.py`: the least a FastAPI + SQLAlchemy service can do.

    .venv/bin/python bench/api_floor.py --port 8001 --database-url postgresql+psycopg://...

One table shaped like a small application row, `GET /items/{id}` (one primary-key read) and
`POST /items` (one insert), with the API's driver (psycopg 3), pool size and pool settings, sync
routes on FastAPI's thread pool like the API's. No authentication, no logging, no metrics.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import DateTime, Integer, String, Uuid, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "floor_items"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(32), default="draft")
    first_name: Mapped[str] = mapped_column(String(60))
    last_name: Mapped[str] = mapped_column(String(60))
    curp: Mapped[str] = mapped_column(String(18))
    plates: Mapped[str] = mapped_column(String(8))
    make: Mapped[str] = mapped_column(String(50))
    line: Mapped[str] = mapped_column(String(50))
    service_type: Mapped[str] = mapped_column(String(16))
    model_year: Mapped[int] = mapped_column(Integer)
    amount_centavos: Mapped[int] = mapped_column(Integer, default=150_000)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )


class ItemIn(BaseModel):
    first_name: str = Field(max_length=60)
    last_name: str = Field(max_length=60)
    curp: str = Field(max_length=18)
    plates: str = Field(max_length=8)
    make: str = Field(max_length=50)
    line: str = Field(max_length=50)
    service_type: str = Field(max_length=16)
    model_year: int


class ItemOut(ItemIn):
    id: uuid.UUID
    status: str
    amount_centavos: int
    created_at: datetime

    model_config = {"from_attributes": True}


def db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


Db = Annotated[Session, Depends(db)]


def create_floor_app(database_url: str, pool_size: int) -> FastAPI:
    engine = create_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args={"connect_timeout": 3},
    )
    Base.metadata.create_all(engine)
    app = FastAPI()
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)

    @app.get("/items/{item_id}", response_model=ItemOut)
    def get_item(item_id: uuid.UUID, session: Db) -> Any:
        item = session.get(Item, item_id)
        if item is None:
            raise HTTPException(404)
        return item

    @app.post("/items", response_model=ItemOut, status_code=201)
    def create_item(body: ItemIn, session: Db) -> Any:
        item = Item(**body.model_dump())
        session.add(item)
        session.commit()
        return item

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pool-size", type=int, default=10)
    args = parser.parse_args()
    uvicorn.run(
        create_floor_app(args.database_url, args.pool_size),
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
