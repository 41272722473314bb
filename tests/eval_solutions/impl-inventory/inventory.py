"""Stock of a small shop: items with a SKU, a name, a unit price and a quantity."""

from dataclasses import dataclass


class StockError(Exception):
    """Raised when an operation would make the stock inconsistent."""


@dataclass
class Item:
    sku: str
    name: str
    price: float  # unit price in euros
    quantity: int


class Inventory:
    """The items in stock, by SKU."""

    def __init__(self):
        self.items = {}

    def add(self, sku, name, price, quantity=1):
        if quantity < 1 or price < 0:
            raise ValueError("quantity must be at least 1 and price not negative")
        if sku in self.items:
            self.items[sku].quantity += quantity
        else:
            self.items[sku] = Item(sku, name, price, quantity)
        return self.items[sku].quantity

    def remove(self, sku, quantity=1):
        item = self.items[sku]
        if quantity > item.quantity:
            raise StockError(f"only {item.quantity} of {sku} in stock")
        item.quantity -= quantity
        if item.quantity == 0:
            del self.items[sku]
        return item.quantity

    def quantity(self, sku):
        return self.items[sku].quantity if sku in self.items else 0

    def total_value(self):
        return round(sum(i.price * i.quantity for i in self.items.values()), 2)

    def low_stock(self, threshold=5):
        return sorted(s for s, i in self.items.items() if i.quantity < threshold)

    def search(self, text):
        return sorted(i.name for i in self.items.values() if text.lower() in i.name.lower())

    def restock_list(self, target=10):
        return {s: target - i.quantity for s, i in self.items.items() if i.quantity < target}
