"""Compound interest: the final amount (compounded yearly or monthly) or the interest earned."""

from __future__ import annotations

from k2nb.nano.curriculum.slots import NAMES, dec, ints, one_of, total
from k2nb.nano.curriculum.spec import Clauses, Family, Kind, checked

YEARLY_QUESTIONS = [
    "{name} invests {p} dollars at {r}% per year, compounded yearly, for {n} years. Final amount?",
    "How much do {p} dollars grow to in {n} years at {r}% yearly compound interest?",
    "A deposit of {p} dollars earns {r}% a year, compounded annually. Balance after {n} years?",
    "Compound {p} dollars at {r}% per year for {n} years. What is the total?",
    "What is {p} dollars worth after {n} years at {r}% interest compounded every year?",
    "{name} puts {p} dollars in a bank paying {r}% a year, compounded yearly. How much is there after "
    "{n} years?",
    "Principal {p} dollars, rate {r}% per year compounded annually, {n} years. Final amount?",
    "Compute the value of {p} dollars after {n} years of {r}% annual compound interest.",
    "I deposit {p} dollars at {r}% per year with yearly compounding. What will I have after {n} years?",
    "Work out the amount: {p} dollars growing at {r}% compounded once a year for {n} years.",
    "A bond of {p} dollars grows by {r}% every year, and the growth compounds. How much is it worth in "
    "{n} years?",
    "Tell me the final sum when {p} dollars earn {r}% annually, compounded each year, for {n} years.",
    "In {n} years, what will {p} dollars become at {r}% interest per year compounded yearly?",
    "{p} dollars at {r}% annual compound interest, {n} years: total?",
    "Back in school, {name} opened an account with {p} dollars at {r}% a year, compounded annually. "
    "What is the balance {n} years later?",
    "How many dollars does an account reach after {n} years if it starts at {p} dollars and compounds "
    "at {r}% per year?",
    "Find the future value of {p} dollars in {n} years at {r}% per year, compounded annually.",
    "{p} dollars are saved at {r}% yearly interest for {n} years. Final balance?",
]

MONTHLY_QUESTIONS = [
    "{name} saves {p} dollars at {r}% a year, compounded monthly, for {n} years. Final amount?",
    "How much do {p} dollars become after {n} years at {r}% yearly rate compounded monthly?",
    "A loan of {p} dollars grows at {r}% per year, compounded each month, for {n} years. Amount owed?",
    "Compound {p} dollars monthly at {r}% annual rate for {n} years. Total?",
    "{name} deposits {p} dollars at {r}% per year, compounded every month. How much is there after {n} "
    "years?",
    "Principal {p} dollars, annual rate {r}%, monthly compounding, {n} years. Final amount?",
    "Compute the final amount for {p} dollars over {n} years with {r}% a year compounded monthly.",
    "I save {p} dollars in an account paying {r}% yearly, compounded monthly. What do I have in {n} "
    "years?",
    "Work out how much {p} dollars grow to in {n} years if interest is {r}% per year and compounds each "
    "month.",
    "A credit card debt of {p} dollars grows at an annual {r}%, compounded monthly. How much is owed "
    "after {n} years?",
    "Tell me the amount in {n} years for {p} dollars at {r}% yearly, compounded twelve times a year.",
    "{p} dollars, {r}% a year, compounded monthly, {n} years: total?",
    "For {n} years, {name} leaves {p} dollars in savings at {r}% annual interest with monthly "
    "compounding. Final amount?",
    "At an annual rate of {r}% compounded monthly, what do {p} dollars become in {n} years?",
    "How much money is in the account {n} years after depositing {p} dollars at {r}% a year, compounded "
    "monthly?",
    "Find the future value of {p} dollars in {n} years, rate {r}% per year, compounding monthly.",
    "What is the balance of {p} dollars after {n} years at {r}% compounded monthly?",
]

EARNED_QUESTIONS = [
    "{name} banks {p} dollars at {r}% yearly compound interest. How much interest after {n} years?",
    "How much interest do {p} dollars earn in {n} years at {r}% compounded yearly?",
    "Interest earned on {p} dollars at {r}% per year, compounded annually, over {n} years?",
    "What interest does a {p} dollar deposit make in {n} years at {r}% yearly compounding?",
    "{name} deposits {p} dollars at {r}% a year, compounded annually. How much interest is earned in "
    "{n} years?",
    "Principal {p} dollars, {r}% per year compounded yearly, {n} years. How much interest?",
    "Compute only the interest earned on {p} dollars in {n} years with {r}% annual compound interest.",
    "I put {p} dollars into savings at {r}% per year, compounded once a year. How much interest will I "
    "earn in {n} years?",
    "Work out the interest (not the total) on {p} dollars at {r}% a year, compounded yearly, for {n} "
    "years.",
    "A bank pays {r}% per year, compounded yearly. What interest does {name} get on {p} dollars in {n} "
    "years?",
    "Tell me the compound interest {p} dollars earn at {r}% per year, compounded annually, for {n} "
    "years.",
    "{p} dollars, {r}% yearly compound interest, {n} years: interest earned?",
    "How many dollars of interest does a {p} dollar deposit gain in {n} years with {r}% per year, "
    "compounded annually?",
    "After {n} years of {r}% annual compounding, how much interest have {name}'s {p} dollars earned?",
    "Find the interest part of the balance when {p} dollars compound at {r}% yearly for {n} years.",
    "Leaving out the original {p} dollars, by how much does the balance grow in {n} years with {r}% a "
    "year compounded annually?",
    "Over {n} years at {r}% compounded yearly, how much interest do {p} dollars earn?",
]


def clauses(kind: str) -> Clauses:
    """The composed phrasings of one kind: principal, rate and years in any order, then the ask."""
    rate = "{r}% a year, compounded monthly" if kind == "monthly" else "{r}% a year, compounded yearly"
    facts = [["{name} deposits {p} dollars", "the principal is {p} dollars",
              "an account starts with {p} dollars", "the amount saved is {p} dollars",
              "{name} lends {p} dollars"],
             [f"the rate is {rate}", f"interest is {rate}", f"the bank pays {rate}",
              f"it earns {rate.replace('a year', 'yearly interest')}"],
             ["the money stays for {n} years", "the term is {n} years", "{n} years pass",
              "the time is {n} years", "it is left for {n} years"]]
    # The word "interest" is in asks of both kinds, so that the ask's meaning, not the word, tells
    # the kind (with it only in the earned asks, "yearly interest … Final balance?" became earned).
    if kind == "earned":
        asks = ["How much interest is earned?", "What is the interest only?",
                "How much interest does it make?", "Find the interest, not the total.",
                "By how much does the balance grow?",
                "What is the gain over the starting amount?"]
    else:
        asks = ["What is the final amount?", "How much is there at the end?", "What is the balance then?",
                "Find the total amount.", "What is the balance with the interest included?",
                "How much is there in all, interest and principal?"]
    return Clauses(facts, asks)


# a round principal, often with some dollars more: randint(1, 99) is drawn before the choice
PRINCIPAL = total(one_of(100, 200, 250, 500, 750, 800, 1000, 1200, 1500, 2000, 2500, 3000, 5000),
                  one_of(0, 0, 0, ints(1, 99)))
YEARLY_LOOP = "a = {p}\nfor _ in range({n}):\n    a *= 1 + {r} / 100\n"

FAMILY = Family(
    "interest",
    n_heldout=1,
    slots=(("p", PRINCIPAL), ("r", dec(1, 12, 0.6)), ("n", ints(2, 15))),
    people=(("name", one_of(*NAMES)),),
    unit=" dollars",
    numeric=("p", "r", "n"),
    roles={"p": "principal", "r": "rate", "n": "years"},
    kinds=(
        Kind("yearly", questions=YEARLY_QUESTIONS, clauses=clauses("yearly"), key=("p", "r", "n"),
             steps=checked("Amount = {p} * (1 + {r} / 100) ** {n}.",
                           "print(round({p} * (1 + {r} / 100) ** {n}, 2))",
                           "Check with a loop over the {n} years.", YEARLY_LOOP + "print(round(a, 2))")),
        Kind("monthly", questions=MONTHLY_QUESTIONS, clauses=clauses("monthly"), key=("p", "r", "n"),
             steps=checked("Amount = {p} * (1 + {r} / 100 / 12) ** (12 * {n}).",
                           "print(round({p} * (1 + {r} / 100 / 12) ** (12 * {n}), 2))",
                           "Check with a loop over the months.",
                           "a = {p}\nfor _ in range(12 * {n}):\n    a *= 1 + {r} / 1200\n"
                           "print(round(a, 2))")),
        Kind("earned", questions=EARNED_QUESTIONS, clauses=clauses("earned"), key=("p", "r", "n"),
             steps=checked("Interest = {p} * (1 + {r} / 100) ** {n} - {p}.",
                           "print(round({p} * (1 + {r} / 100) ** {n} - {p}, 2))",
                           "Check with a loop, then subtract {p}.",
                           YEARLY_LOOP + "print(round(a - {p}, 2))")),
    ),
)
