"""Invoices as plain text."""


def line_total(quantity, unit_price, discount=0.0):
    return round(quantity * unit_price * (1 - discount), 2)


def totals(lines, vat_rate):
    net = round(
        sum(line_total(x["quantity"], x["unit_price"], x.get("discount", 0.0)) for x in lines), 2
    )
    vat = round(net * vat_rate, 2)
    return {"net": net, "vat": vat, "gross": round(net + vat, 2)}


def format_money(amount):
    return f"{amount:,.2f}"


def render_invoice(number, customer, lines, vat_rate=0.2):
    """The invoice as text: a header, one row per line, then net, VAT and gross totals."""
    out = [f"Invoice {number}", f"Customer: {customer}", ""]
    for line in lines:
        discount = line.get("discount", 0.0)
        amount = line_total(line["quantity"], line["unit_price"], discount)
        label = line["item"] + (f" (-{discount:.0%})" if discount else "")
        out.append(f"{line['quantity']:>4} x {label:<30}{format_money(amount):>12}")
    t = totals(lines, vat_rate)
    out.append("")
    out.append(f"{'Net':<37}{format_money(t['net']):>12}")
    out.append(f"{f'VAT {vat_rate:.0%}':<37}{format_money(t['vat']):>12}")
    out.append(f"{'Total':<37}{format_money(t['gross']):>12}")
    return "\n".join(out)
