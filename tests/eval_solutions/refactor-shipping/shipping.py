"""Parcel prices by zone and weight: standard and express."""

# zone: (price up to 1 kg, price up to 5 kg, price per kg above 5 kg)
RATES = {
    "domestic": (4.5, 7.0, 1.2),
    "eu": (9.0, 15.0, 2.5),
    "world": (18.0, 32.0, 5.0),
}


def base_cost(zone, weight_kg):
    """The standard price before rounding."""
    if weight_kg <= 0:
        raise ValueError("weight must be positive")
    if zone not in RATES:
        raise ValueError(f"unknown zone: {zone}")
    small, medium, per_kg = RATES[zone]
    if weight_kg <= 1:
        return small
    if weight_kg <= 5:
        return medium
    return medium + (weight_kg - 5) * per_kg


def shipping_cost(zone, weight_kg):
    """Standard price in euros of a parcel of weight_kg to zone, rounded to 2 decimals."""
    return round(base_cost(zone, weight_kg), 2)


def express_cost(zone, weight_kg):
    """Express price: the standard price plus 50%, at least 10 euros more, rounded."""
    price = base_cost(zone, weight_kg)
    return round(price + max(price * 0.5, 10.0), 2)


def quote(zone, weight_kg, express=False):
    """A one-line quote, e.g. 'eu 2.0 kg standard: 15.00 EUR'."""
    cost = express_cost(zone, weight_kg) if express else shipping_cost(zone, weight_kg)
    kind = "express" if express else "standard"
    return f"{zone} {weight_kg:.1f} kg {kind}: {cost:.2f} EUR"
