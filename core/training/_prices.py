"""The on-demand price of a SageMaker training instance hour, from the AWS Price List API.

SageMaker's products (service code ``AmazonSageMaker``, family ``ML Instance``) carry the
region (``regionCode``), the type (``instanceName``) and what the instance is for
(``platoinstancetype``: ``Training``, ``Hosting``, ...). Each product's on-demand term has one
price dimension in USD per hour.
"""

from __future__ import annotations

import json
from typing import Any

SERVICE_CODE = "AmazonSageMaker"
PRODUCT_FAMILY = "ML Instance"
TRAINING = "Training"


def _match(field: str, value: str) -> dict[str, str]:
    return {"Type": "TERM_MATCH", "Field": field, "Value": value}


def training_price_per_hour(pricing: Any, region: str, instance_type: str) -> float | None:
    """USD per instance hour of training on ``instance_type`` in ``region``; None where the price
    list has no such product (a type the region does not offer).

    Raises:
        botocore's ClientError: the Price List API refused (no ``pricing:GetProducts``).
    """
    response = pricing.get_products(
        ServiceCode=SERVICE_CODE,
        Filters=[_match("productFamily", PRODUCT_FAMILY), _match("regionCode", region),
                 _match("instanceName", instance_type), _match("platoinstancetype", TRAINING)],
        FormatVersion="aws_v1",
        MaxResults=10,
    )
    for item in response.get("PriceList", []):
        product = json.loads(item) if isinstance(item, str) else item
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if usd is not None and dimension.get("unit", "").lower().startswith("hr") and float(usd) > 0:
                    return float(usd)
    return None
