"""A small test-only CDP dialect, shaped like the contract's Dialect.

``flat_dialect()`` mirrors the AsyncAPI payloads (strict types, flat camelCase
``ext``); ``nested_dialect()`` is shaped like Sitecore's data model (nested
``order``/``product`` objects with camelCase aliases, ``identifiers`` lists), so
the compiler's handling of nested models and lists of models is tested too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr


@dataclass(frozen=True)
class TestDialect:
    name: str
    models: Mapping[str, type[BaseModel]]

    def model_for(self, event_type: str) -> type[BaseModel]:
        return self.models.get(event_type, self.models["CUSTOM"])

    def validate(self, payload: Mapping[str, Any]) -> BaseModel:
        return self.model_for(str(payload.get("type"))).model_validate(payload)

    def dump(self, model: BaseModel) -> bytes:
        return model.__pydantic_serializer__.to_json(model, exclude_none=True, by_alias=True)

    def encoder(self, event_type: str) -> Callable[[Mapping[str, Any]], bytes]:
        model = self.model_for(event_type)
        return lambda payload: self.dump(model.model_validate(payload))


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


ExtValue = bool | int | float | str
Ext = dict[Annotated[str, Field(pattern=r"^[a-z][a-zA-Z0-9]*$")], ExtValue]


class Base(_Strict):
    channel: Literal["WEB", "MOBILE_WEB", "MOBILE_APP", "SERVER_SIDE"]
    type: StrictStr
    browser_id: StrictStr
    session_id: StrictStr
    pos: StrictStr
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    language: Annotated[str, Field(pattern=r"^(?i:[a-z]{2})$")] | None = None
    page: StrictStr | None = None
    ext: Ext | None = None


class View(Base):
    type: Literal["VIEW"]


class Identity(Base):
    type: Literal["IDENTITY"]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")]
    firstname: StrictStr | None = None
    lastname: StrictStr | None = None
    date_of_birth: Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\d$")] | None = None
    gender: Literal["Male", "Female", "Other", "Unknown"] | None = None
    phone: StrictStr | None = None


class Item(_Strict):
    sku: StrictStr
    name: StrictStr | None = None
    quantity: Annotated[int, Field(ge=1)]
    price: float
    category: StrictStr | None = None


class OrderCheckout(Base):
    type: Literal["ORDER_CHECKOUT"]
    reference_id: StrictStr
    status: Literal["CONFIRMED", "PENDING", "CANCELED"] | None = None
    total_price: float
    payment_type: Literal["CREDIT_CARD", "DEBIT_CARD", "PAYPAL", "GIFT_CARD", "OTHER"] | None = None
    ordered_at: StrictStr | None = None
    items: list[Item] | None = None


class Product(_Strict):
    sku: StrictStr
    name: StrictStr | None = None
    price: float | None = None
    category: StrictStr | None = None


class Add(Base):
    type: Literal["ADD"]
    product: Product


class Search(Base):
    type: Literal["SEARCH"]
    search_term: StrictStr
    num_results: Annotated[int, Field(ge=0)] | None = None


class Custom(Base):
    type: Annotated[str, Field(min_length=1, max_length=50)]


def flat_dialect() -> TestDialect:
    return TestDialect(
        "test-flat",
        {
            "VIEW": View,
            "IDENTITY": Identity,
            "ORDER_CHECKOUT": OrderCheckout,
            "ADD": Add,
            "SEARCH": Search,
            "CUSTOM": Custom,
        },
    )


# --- nested, Sitecore-shaped ------------------------------------------------


class _Camel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


class NBase(_Camel):
    channel: Literal["WEB", "MOBILE_APP"]
    type: StrictStr
    browser_id: StrictStr
    pos: StrictStr
    language: StrictStr
    currency: StrictStr
    page: StrictStr


class Identifier(_Camel):
    provider: StrictStr
    id: StrictStr
    expiry_date: StrictStr | None = None


class NIdentity(NBase):
    type: Literal["IDENTITY"]
    identifiers: Annotated[list[Identifier], Field(min_length=1)]
    email: StrictStr | None = None
    street: list[StrictStr] | None = None


class NOrderItem(_Camel):
    reference_id: StrictStr = Field(alias="referenceId")
    product_id: StrictStr = Field(alias="productId")
    quantity: int
    price: float
    currency_code: StrictStr = Field(alias="currencyCode")


class NOrder(_Camel):
    reference_id: StrictStr = Field(alias="referenceId")
    ordered_at: StrictStr = Field(alias="orderedAt")
    price: float
    currency_code: StrictStr = Field(alias="currencyCode")
    payment_type: Literal["Card", "PayPal", "Other"] = Field(alias="paymentType")
    order_items: list[NOrderItem] | None = Field(default=None, alias="orderItems")
    extensions: dict[str, Any] | None = None


class NOrderCheckout(NBase):
    type: Literal["ORDER_CHECKOUT"]
    order: NOrder


class NView(NBase):
    type: Literal["VIEW"]


class NCustom(NBase):
    ext: dict[str, Any] | None = None


def nested_dialect() -> TestDialect:
    return TestDialect(
        "test-nested",
        {
            "VIEW": NView,
            "IDENTITY": NIdentity,
            "ORDER_CHECKOUT": NOrderCheckout,
            "CUSTOM": NCustom,
        },
    )
