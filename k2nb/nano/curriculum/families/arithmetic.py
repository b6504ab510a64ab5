"""Arithmetic word problems: packs bought, money spent, items packed into bags, distance at a speed."""

from __future__ import annotations

from k2nb.nano.curriculum.slots import ITEMS, NAMES, const, dec, ints, money, one_of
from k2nb.nano.curriculum.spec import Clauses, Family, Kind, checked

BUY_QUESTIONS = [
    "{name} has {a} {item}s and buys {b} packs of {c}. How many {item}s does {name} have now?",
    "{name} starts with {a} {item}s, then gets {b} boxes with {c} {item}s each. How many in total?",
    "There are {a} {item}s. {b} more bags arrive, each with {c} {item}s. How many {item}s now?",
    "A shop has {a} {item}s and receives {b} crates of {c}. Total {item}s?",
    "Add {b} groups of {c} {item}s to {a} {item}s. How many {item}s is that?",
    "{a} {item}s in stock, plus {b} cartons of {c} each: how many {item}s altogether?",
    "Compute the total number of {item}s: {a} already there and {b} crates holding {c} apiece.",
    "I have {a} {item}s and I buy {b} packets with {c} in each. How many {item}s do I have now?",
    "Work out how many {item}s {name} ends up with: {a} to start, then {b} boxes of {c}.",
    "On Monday {name} kept {a} {item}s in a drawer. On Tuesday {name} bought {b} packs, each with "
    "{c} {item}s. How many {item}s are there now?",
    "{b} bundles of {c} {item}s are added to a pile of {a} {item}s. What is the new count?",
    "Tell me the total: {a} {item}s plus {b} bags with {c} {item}s in each.",
    "A teacher collects {a} {item}s, then the class brings {b} more boxes, each holding {c}. How "
    "many {item}s does the teacher have?",
    "{name} got {b} packs of {c} {item}s on top of {a} {item}s. How many {item}s in all?",
    "How many {item}s are there if a heap of {a} {item}s is joined by {b} trays of {c} {item}s?",
    "Starting count {a}; {b} deliveries of {c} {item}s each. Final count of {item}s?",
    "{name} collects {item}s. There are {a} already, and {b} new packs with {c} in each are added. "
    "How many {item}s does {name} have in total?",
    "{name} owns {a} {item}s. After buying {b} sets of {c}, how many does {name} own?",
    "If {name} had {a} {item}s and then got {b} packets holding {c} each, what is the total?",
]
BUY_CLAUSES = Clauses(
    facts=[["{name} has {a} {item}s", "there are {a} {item}s at first", "a shelf holds {a} {item}s",
            "the starting count is {a} {item}s", "{a} {item}s are already in the box",
            "{name} keeps {a} {item}s", "{name} owns {a} {item}s"],
           ["{b} packs of {c} {item}s are added", "{name} buys {b} bags with {c} {item}s each",
            "each of {b} new crates holds {c} {item}s", "{c} {item}s come in each of {b} new boxes",
            "{b} more boxes arrive, {c} {item}s in every box", "{name} adds {b} trays holding {c} each",
            "{name} is buying {b} sets of {c} {item}s"]],
    asks=["How many {item}s are there now?", "What is the total number of {item}s?", "How many in all?",
          "How many {item}s does that make?", "What is the new count?", "Find the total.",
          "How many will {name} own then?", "What does {name} own in all?"],
)

SPEND_QUESTIONS = [
    "{name} had {a} dollars, spent {b} on food and {c} on books. How much is left?",
    "A wallet holds {a} dollars. {name} pays {b} and then {c}. What remains?",
    "{name} earns {a} dollars and spends {b} and {c}. How much money is left?",
    "Start with {a} dollars, subtract {b} and {c}. What is left?",
    "From a budget of {a} dollars, {name} uses {b} for rent and {c} for travel. What is left?",
    "{a} dollars in the account, minus {b} for groceries and {c} for gas. What is left?",
    "I have {a} dollars. I spend {b} on lunch and {c} on a taxi. How many dollars do I have left?",
    "Compute what remains of {a} dollars after two purchases of {b} and {c} dollars.",
    "{name} gets paid {a} dollars, then buys shoes for {b} dollars and a hat for {c} dollars. How "
    "much money is left?",
    "On Friday {name} went shopping with {a} dollars and spent {b} at one store and {c} at another. "
    "How much is left?",
    "Work out the remaining money: {a} dollars minus {b} dollars minus {c} dollars.",
    "A club has {a} dollars. It pays {b} for snacks and {c} for prizes. What is the balance now?",
    "Two costs, {b} and {c} dollars, are taken from {a} dollars. What remains?",
    "{name} withdraws {b} dollars and later {c} dollars from {a} dollars in savings. How many "
    "dollars stay in savings?",
    "Tell me how much is left from {a} dollars once {b} and {c} are spent.",
    "Budget {a} dollars, costs {b} and {c}: money left?",
    "If a trip budget is {a} dollars and {name} spends {b} on a hotel and {c} on meals, how much is "
    "left over?",
    "{name} had {a} dollars. Two bills cost {b} and {c}. How much does {name} keep?",
    "After paying {b} and {c} out of {a} dollars, how many dollars remain?",
]
SPEND_CLAUSES = Clauses(
    facts=[["{name} has {a} dollars", "the budget is {a} dollars", "a wallet holds {a} dollars",
            "there are {a} dollars in the account", "{name} starts the week with {a} dollars",
            "the money available is {a} dollars", "the total to spend from is {a} dollars"],
           ["{name} spends {b} and {c}", "two costs are {b} and {c} dollars",
            "{b} dollars go to food and {c} dollars to rent", "the bills are {b} and {c}",
            "{name} pays {b} dollars, then {c} dollars", "purchases of {b} and {c} dollars are made",
            "a ticket costs {b} and a meal costs {c}",
            "{name} buys a {b} dollar ticket and a {c} dollar meal",
            "a {b} dollar bill and a {c} dollar bill are paid"]],
    asks=["How much is left?", "What remains?", "How many dollars are left?", "What is the balance now?",
          "How much money stays?", "Find what is left over."],
)

BAGS_QUESTIONS = [
    "{a} {item}s are packed into bags of {b}. How many full bags are there?",
    "{name} puts {a} {item}s into boxes of {b}. How many boxes are full?",
    "How many full packs of {b} can be made from {a} {item}s?",
    "A machine fills trays of {b} {item}s from {a} {item}s. How many full trays?",
    "{a} {item}s, bags of {b}: number of full bags?",
    "{name} has {a} {item}s and packs them {b} to a bag. How many bags are filled?",
    "Each carton takes {b} {item}s. How many cartons can be filled from {a} {item}s?",
    "Compute how many full boxes of {b} you get from {a} {item}s.",
    "I have {a} {item}s and want to put exactly {b} in each bag. How many bags will be full?",
    "A bakery packs {item}s in boxes of {b}. It has {a} {item}s today. How many full boxes can it "
    "pack?",
    "Work out the number of complete packets of {b} that {a} {item}s make.",
    "On Monday {name} sorted {a} {item}s into crates holding {b} each. How many crates were full?",
    "How many full bags of {b} {item}s does {name} get out of {a} {item}s?",
    "Tell me how many full sacks you get when {a} {item}s are shared out {b} per sack.",
    "{a} {item}s go into jars, {b} per jar. Leftovers stay out. How many full jars?",
    "If every tray holds {b} {item}s, how many trays does {name} fill with {a} {item}s?",
    "Split {a} {item}s into groups of {b}. How many complete groups?",
    "With {a} {item}s and bags that hold {b}, how many bags can {name} fill completely?",
]
BAGS_CLAUSES = Clauses(
    facts=[["there are {a} {item}s", "{name} has {a} {item}s to pack", "a pile of {a} {item}s waits",
            "the count of {item}s is {a}"],
           ["each bag holds {b}", "a bag fits exactly {b} {item}s", "bags are filled {b} at a time",
            "one bag takes {b} {item}s", "the bag size is {b}", "every bag can hold {b}"]],
    asks=["How many full bags are there?", "How many bags can be filled?", "How many bags are full?",
          "Find the number of full bags.", "How many complete bags?", "How many bags are filled completely?",
          "If they are split into bags, how many bags are full?"],
)

RATE_QUESTIONS = [
    "A car drives {a} km per hour for {b} hours. How far does it go?",
    "{name} walks {a} km each hour for {b} hours. What distance is covered?",
    "A train moves at {a} km per hour. How many km in {b} hours?",
    "At {a} km per hour, how far does {name} travel in {b} hours?",
    "{name} rides a bike for {b} hours at {a} km an hour. Total km?",
    "Speed {a} km/h, time {b} hours. Distance in km?",
    "Compute the distance covered in {b} hours at a steady speed of {a} km per hour.",
    "A boat sails for {b} hours at {a} km per hour. How far does it get?",
    "I drive {b} hours at {a} km per hour. What distance do I cover?",
    "Work out how far a runner gets in {b} hours when running {a} km each hour.",
    "On a holiday, {name} drove for {b} hours, always at {a} km per hour. What distance did {name} "
    "drive?",
    "What distance does a truck travel in {b} hours if it moves {a} km in each hour?",
    "Tell me the distance for {b} hours of travel at {a} km per hour.",
    "{a} km an hour over {b} hours: how far, in km?",
    "A model plane flies {a} km in each hour. After {b} hours, how many km has it flown?",
    "Moving at a constant {a} km per hour, how far does a horse go in {b} hours?",
    "A cyclist keeps {a} km per hour for {b} hours. Distance?",
    "Going {a} km every hour, how many km does a bus cover in {b} hours?",
]
RATE_CLAUSES = Clauses(
    facts=[["the speed is {a} km per hour", "{name} moves at {a} km per hour", "it goes {a} km each hour",
            "a van keeps {a} km per hour", "the pace is {a} km an hour", "a bus goes {a} km per hour"],
           ["the trip lasts {b} hours", "{name} travels for {b} hours", "the drive takes {b} hours",
            "it keeps going for {b} hours", "the time is {b} hours", "a cyclist rides for {b} hours"]],
    asks=["How many km is that?", "What distance is covered?", "How far is it, in km?", "Find the distance.",
          "How many km are covered?"],
)

FAMILY = Family(
    "arithmetic",
    n_heldout=2,
    numeric=("a", "b"),
    people=(("name", one_of(*NAMES)), ("item", one_of(*ITEMS))),
    kinds=(
        Kind("buy", questions=BUY_QUESTIONS, clauses=BUY_CLAUSES,
             slots=(("a", ints(2, 500)), ("b", ints(2, 12)), ("c", ints(2, 60))), key=("a", "b", "c"),
             steps=checked("Total = {a} + {b} * {c}.", "print({a} + {b} * {c})",
                           "Check by adding the packs one at a time.",
                           "t = {a}\nfor _ in range({b}):\n    t += {c}\nprint(t)"),
             unit=" {item}s", roles={"a": "start", "b": "packs", "c": "each"}),
        Kind("spend", questions=SPEND_QUESTIONS, clauses=SPEND_CLAUSES,
             slots=(("a", ints(100, 2000)), ("b", money(5, 60)), ("c", money(5, 40))), key=("a", "b", "c"),
             steps=checked("Left = {a} - {b} - {c}.", "print(round({a} - {b} - {c}, 2))",
                           "Check: subtract the sum of both costs.", "print(round({a} - ({b} + {c}), 2))"),
             unit=" dollars", roles={"a": "budget", "b": "cost", "c": "cost"}),
        # b first: the item count is at least two bags' worth
        Kind("bags", questions=BAGS_QUESTIONS, clauses=BAGS_CLAUSES,
             slots=(("b", ints(3, 25)), ("a", ints(lambda v: int(v["b"]) * 2, 999)), ("c", const(""))),
             key=("a", "b", "c"),
             steps=checked("Full bags = {a} // {b}.", "print({a} // {b})",
                           "Check that {out} bags fit and one more does not.",
                           "print({out} * {b} <= {a} < ({out} + 1) * {b})"),
             unit=" bags", roles={"a": "items", "b": "per bag"}),
        Kind("rate", questions=RATE_QUESTIONS, clauses=RATE_CLAUSES,
             slots=(("a", dec(3, 120)), ("b", ints(2, 9)), ("c", const(""))), key=("a", "b", "c"),
             steps=checked("Distance = {a} * {b}.", "print(round({a} * {b}, 2))",
                           "Check by dividing the distance by the time.",
                           "print(round({out} / {b}, 2) == {a})"),
             # round(a * b, 2) / b may not give a back exactly for decimals: the check allows 0.01
             steps_if=(lambda s: "." in s["a"],
                       checked("Distance = {a} * {b}.", "print(round({a} * {b}, 2))",
                               "Check by dividing the distance by the time.",
                               "print(abs({out} / {b} - {a}) < 0.01)")),
             unit=" km", roles={"a": "speed", "b": "hours"}),
    ),
)
