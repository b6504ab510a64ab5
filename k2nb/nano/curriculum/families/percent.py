"""Percentages: a percent of a number, a discounted price, the percent change between two values."""

from __future__ import annotations

from k2nb.nano.curriculum.slots import ITEMS, NAMES, const, ints, money, one_of, total
from k2nb.nano.curriculum.spec import Clauses, Family, Kind, checked

OF_QUESTIONS = [
    "What is {p}% of {x}?",
    "Compute {p} percent of {x}.",
    "How much is {p}% of {x}?",
    "Find {p}% of {x}.",
    "Calculate {p}% of {x}.",
    "{p}% of {x} is how much?",
    "Tell me {p} percent of {x}, please.",
    "I need {p}% of the number {x}.",
    "Work out {p} percent of the amount {x}.",
    "What number is {p}% of {x}?",
    "Of the value {x}, how much is {p}%?",
    "{name} gets {p}% of {x} points. How many points is that?",
    "A tax of {p}% is charged on {x}. How big is the tax?",
    "Determine {p} percent of {x}.",
    "If you take {p}% of {x}, which number results?",
    "{x} times {p}% equals what?",
    "{name} wants {p}% of {x}. What is it?",
    "Take {p} percent of {x}. What do you get?",
]

DISCOUNT_QUESTIONS = [
    "A {item} costs {x} dollars and is {p}% off. What is the sale price?",
    "{name} buys a {item} priced {x} dollars with a {p}% discount. What does {name} pay?",
    "The price {x} dollars is cut by {p}%. New price?",
    "With {p}% off, how much is a {item} that normally costs {x} dollars?",
    "A {item} is marked {x} dollars. It is on sale at {p}% off. What does it cost now?",
    "{x} dollars, {p}% discount: sale price?",
    "Compute the price after a {p}% discount on {x} dollars.",
    "I want a {item} that costs {x} dollars, and there is {p}% off today. How much do I pay?",
    "The store cuts {p}% from the {x} dollars price of a {item}. How much does it cost after the "
    "cut?",
    "{name} finds a {item} for {x} dollars with a coupon for {p}% off. What is the price with the "
    "coupon?",
    "Work out the discounted price: {x} dollars less {p}%.",
    "During a sale, every {item} gets {p}% off. A {item} was {x} dollars. What is its sale price?",
    "Tell me the cost of a {item} listed at {x} dollars after taking off {p}%.",
    "How much is {x} dollars after a {p}% reduction?",
    "A {p}% discount applies to a {item} priced at {x} dollars. How many dollars is the new price?",
    "On Black Friday, {name} sees a {item} reduced by {p}% from {x} dollars. What does it sell for?",
    # "off" right before the price: the number after "off" is the price, the one before the "%" is
    # the discount (without these, "takes 15% off a 578 ..." was read as "off 57").
    "Take {p}% off {x} dollars. What is the new price?",
    "The shop knocks {p}% off the {x} dollars that a {item} costs. What does it cost now?",
    "{name} gets {p}% off {x} dollars of {item}s. How much does {name} pay?",
    "A shop takes {p}% off a {x} dollar {item}. What is the final price?",
    "What do you pay for a {x} dollar {item} at {p}% off?",
]
DISCOUNT_CLAUSES = Clauses(
    facts=[["a {item} costs {x} dollars", "the list price is {x} dollars", "the normal price is {x} dollars",
            "{name} picks a {item} priced at {x} dollars", "the tag says {x} dollars"],
           ["it is {p}% off", "there is a {p}% discount", "the store takes {p}% off",
            "a coupon gives {p}% off", "the sale cuts {p}%", "the shop sells it at {p}% off",
            "{p}% is taken off"]],
    asks=["What is the sale price?", "How much do you pay?", "What is the new price?",
          "What does it cost after the discount?", "Find the final price."],
)

CHANGE_QUESTIONS = [
    "A price went from {x} to {y}. What is the percent change?",
    "Sales rose from {x} to {y}. By what percent did they change?",
    "{name}'s score moved from {x} to {y}. Percent change?",
    "What is the percent change from {x} to {y}?",
    "The price was {x} and is now {y}. Find the percent change.",
    "{x} became {y}. Percent change?",
    "Compute the percentage change when a number goes from {x} to {y}.",
    "Old value {x}, new value {y}: percent change?",
    "{name} had {x} followers last year and has {y} this year. By what percent did the count "
    "change?",
    "Work out the percent change of a stock that moved from {x} to {y}.",
    "Rent changed to {y} from {x}. Give the percent change.",
    "Tell me the relative change, in percent, from {x} to {y}.",
    "On Monday the count was {x}; on Friday it was {y}. Give the percent change from Monday to "
    "Friday.",
    "If a population of {x} becomes {y}, how big is the percent change?",
    "A website had {x} visits in May and {y} in June. Find the percent change.",
    "By how many percent does {x} change if it turns into {y}?",
    "A value changes from {x} to {y}. How many percent is that?",
    "Going from {x} to {y}, what is the change in percent?",
]
CHANGE_CLAUSES = Clauses(
    facts=[["it was {x} before", "the old value is {x}", "last year it was {x}", "the start value is {x}",
            "at first the count was {x}"],
           ["it is {y} now", "the new value is {y}", "this year it is {y}", "the end value is {y}",
            "later the count was {y}", "then it changes to {y}"]],
    asks=["What is the percent change?", "By what percent did it change?", "Find the change in percent.",
          "How many percent is the change?"],
)

PERCENT = total(one_of(5, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50, 60, 75), one_of(0, 0, 0, 3))

FAMILY = Family(
    "percent",
    n_heldout=2,
    numeric=("p", "x"),
    slots=(("p", PERCENT), ("x", money(10, 900)), ("y", const(""))),
    people=(("name", one_of(*NAMES)), ("item", one_of(*ITEMS))),
    kinds=(
        Kind("of", questions=OF_QUESTIONS, key=("p", "x", "y"),
             steps=checked("Part = {x} * {p} / 100.", "print(round({x} * {p} / 100, 2))",
                           "Check with the fraction {p} / 100 first.",
                           "f = {p} / 100\nprint(round(f * {x}, 2))"),
             roles={"p": "percent", "x": "of"}),
        Kind("discount", questions=DISCOUNT_QUESTIONS, clauses=DISCOUNT_CLAUSES, key=("p", "x", "y"),
             steps=checked("Price = {x} * (1 - {p} / 100).", "print(round({x} * (1 - {p} / 100), 2))",
                           "Check: subtract the discount amount.", "print(round({x} - {x} * {p} / 100, 2))"),
             unit=" dollars", roles={"x": "price", "p": "off"}),
        Kind("change", questions=CHANGE_QUESTIONS, clauses=CHANGE_CLAUSES, key=("p", "x", "y"),
             slots=(("p", PERCENT), ("x", ints(20, 900)), ("y", ints(10, 1200))),
             steps=checked("Change = ({y} - {x}) / {x} * 100.", "print(round(({y} - {x}) / {x} * 100, 2))",
                           "Check with the ratio {y} / {x}.", "print(round(({y} / {x} - 1) * 100, 2))"),
             unit="%", roles={"x": "old", "y": "new"}),
    ),
)
