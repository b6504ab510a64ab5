"""Dates and durations: days between two dates, the date n days later, a weekday, hours to minutes."""

from __future__ import annotations

from k2nb.nano.curriculum.slots import NAMES, date, days_after, ints, one_of
from k2nb.nano.curriculum.spec import Family, Kind, Step

BETWEEN_QUESTIONS = [
    "How many days are there from {d1} to {d2}?",
    "Count the days between {d1} and {d2}.",
    "{name} travels from {d1} until {d2}. How many days is that?",
    "What is the number of days from {d1} to {d2}?",
    "{d1} to {d2}: number of days?",
    "Compute the number of days between {d1} and {d2}.",
    "Tell me how many days pass from {d1} until {d2}.",
    "A lease starts on {d1} and ends on {d2}. Count the days it covers.",
    "{name} counts down the days between {d1} and {d2}. How long is the countdown in days?",
    "Work out the gap in days between {d1} and {d2}.",
    "If today is {d1}, how many days are left until {d2}?",
    "Between {d1} and {d2}, how much time passes in days?",
    "Starting on {d1}, how many days does it take to reach {d2}?",
    "On {d1} {name} planted a tree; on {d2} it bloomed. How many days passed?",
    "Find the day difference between {d1} and {d2}.",
    "A loan is taken on {d1} and repaid on {d2}. For how many days was it held?",
    "A course runs from {d1} to {d2}. The project needs all of it. How many days is that?",
    "A project runs from {d1} to {d2}. How many days long is it?",
    "How many days separate {d1} and {d2}?",
]
BETWEEN_STEPS = [
    Step("Days = date {d2} minus date {d1}.",
         "from datetime import date\n"
         "print((date.fromisoformat('{d2}') - date.fromisoformat('{d1}')).days)"),
    Step("Check: {d1} plus {out} days should be {d2}.",
         "from datetime import timedelta\n"
         "print(date.fromisoformat('{d1}') + timedelta(days={out}) == date.fromisoformat('{d2}'))",
         "verify"),
]

AFTER_QUESTIONS = [
    "What date is {n} days after {d1}?",
    "Add {n} days to {d1}. Which date is it?",
    "{name} starts on {d1}. What is the date {n} days later?",
    "Which date comes {n} days after {d1}?",
    "{d1} plus {n} days: which date?",
    "Compute the date that is {n} days after {d1}.",
    "Tell me which date we reach by counting {n} days forward from {d1}.",
    "A parcel ships on {d1} and arrives {n} days later. What is the arrival date?",
    "{name} books a trip on {d1} that leaves in {n} days. On which date does it leave?",
    "Work out the calendar date {n} days on from {d1}.",
    "If a countdown of {n} days begins on {d1}, on which date does it reach zero?",
    "Starting from {d1}, move {n} days ahead. What date is that?",
    "{n} days after {d1} is which date?",
    "On {d1} {name} planted seeds that sprout {n} days later. On which date do they sprout?",
    "Find which date falls {n} days later than {d1}.",
    "What is {d1} shifted forward by {n} days?",
    "A free trial starts on {d1}. Which date is {n} days past that?",
    "A trial begins {d1} and lasts {n} days. On what date does it end?",
    "Give the date {n} days past {d1}.",
]
AFTER_STEPS = [
    Step("Date = {d1} + {n} days.",
         "from datetime import date, timedelta\n"
         "print(date.fromisoformat('{d1}') + timedelta(days={n}))"),
    Step("Check: from {d1} to {out} should be {n} days.",
         "print((date.fromisoformat('{out}') - date.fromisoformat('{d1}')).days == {n})", "verify"),
]

WEEKDAY_QUESTIONS = [
    "What day of the week is {d1}?",
    "Which weekday was {d1}?",
    "{name} was born on {d1}. What day of the week was that?",
    "On which weekday does {d1} fall?",
    "{d1}: which day of the week?",
    "Compute the day of the week for {d1}.",
    "Work out what weekday {d1} is.",
    "{name}'s exam is on {d1}. Which day of the week is the exam?",
    "I need the name of the weekday for the date {d1}.",
    "Find the day name of {d1}.",
    "Which day of the week does {d1} land on?",
    "A concert is planned for {d1}. What weekday is that?",
    "Give the day of the week of the date {d1}.",
    "Name the day of the week that {d1} falls on.",
    "For the date {d1}, what day of the week is it?",
    "{name} got married on {d1}. Which weekday was the wedding?",
    "Is {d1} in the week or on the weekend? Name its day.",
    "Tell me the weekday of {d1}.",
    "Was {d1} a Monday, a Friday, or another day?",
]
WEEKDAY_STEPS = [
    Step("Use strftime('%A') on {d1}.",
         "from datetime import date\nprint(date.fromisoformat('{d1}').strftime('%A'))"),
    Step("Check with weekday(): Monday is 0.",
         "print(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday']"
         "[date.fromisoformat('{d1}').weekday()])", "verify"),
]

MINUTES_QUESTIONS = [
    "How many minutes are in {h} hours and {m} minutes?",
    "Convert {h} h {m} min to minutes.",
    "{name} worked {h} hours and {m} minutes. How many minutes is that?",
    "A film lasts {h} hours {m} minutes. Length in minutes?",
    "{h} h {m} min: how many minutes in total?",
    "Compute the total minutes in {h} hours, {m} minutes.",
    "A flight takes {h} hours {m} minutes. How long is it in minutes?",
    "Tell me how many minutes make up {h} hours with {m} extra minutes.",
    "I slept for {h} hours {m} minutes. How many minutes did I sleep?",
    "Work out {h} hours {m} minutes in total minutes.",
    "{name} studied {h} hours, then {m} more minutes. How many minutes of study is that?",
    "Turn {h} h {m} min into minutes.",
    "A race took {name} {h} hours {m} minutes. What is the time in minutes only?",
    "How many minutes long is a meeting of {h} hours {m} minutes?",
    "On Sunday the drive lasted {h} hours {m} minutes. Give the total number of minutes.",
    "A video is {h} h {m} min long. Length in minutes?",
    "What is {h} hours plus {m} minutes in minutes?",
    "Express {h} hours and {m} minutes as minutes.",
]
MINUTES_STEPS = [
    Step("Minutes = {h} * 60 + {m}.", "print({h} * 60 + {m})"),
    Step("Check with timedelta.",
         "from datetime import timedelta\n"
         "print(int(timedelta(hours={h}, minutes={m}).total_seconds() // 60))",
         "verify"),
]

FAMILY = Family(
    "dates",
    n_heldout=2,
    # every kind draws every slot, so that the draws of a seed do not depend on the kind
    slots=(("d1", date()), ("d2", days_after("d1", 3, 900)), ("n", ints(2, 400)), ("h", ints(1, 23)),
           ("m", ints(1, 59))),
    people=(("name", one_of(*NAMES)),),
    kinds=(
        Kind("between", questions=BETWEEN_QUESTIONS, steps=BETWEEN_STEPS, key=("d1", "d2"), unit=" days",
             roles={"d1": "from", "d2": "to"}),
        Kind("after", questions=AFTER_QUESTIONS, steps=AFTER_STEPS, key=("d1", "n"), numeric=("n",),
             roles={"d1": "start", "n": "days"}),
        Kind("weekday", questions=WEEKDAY_QUESTIONS, steps=WEEKDAY_STEPS, key=("d1",)),
        Kind("minutes", questions=MINUTES_QUESTIONS, steps=MINUTES_STEPS, key=("h", "m"), unit=" minutes",
             numeric=("h", "m"), roles={"h": "hours", "m": "minutes"}),
    ),
)
