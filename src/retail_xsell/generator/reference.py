"""Built-in reference lists: catalogue, names, countries, cities, value spellings.

Kept as plain constants (no files, no downloads) so the generator is self-contained and
its output depends only on the code and the seed. All people, brands, email domains and
phone numbers are fictional.
"""

from __future__ import annotations

from typing import Final

# --- Catalogue -----------------------------------------------------------------------
# category -> (popularity weight, brands, {subcategory: (median list price, nouns)})
# Median prices are per unit in the store currency; list prices are lognormal around them.

CategorySpec = tuple[float, tuple[str, ...], dict[str, tuple[float, tuple[str, ...]]]]

CATALOGUE: Final[dict[str, CategorySpec]] = {
    "Electronics": (
        0.13,
        ("Voltix", "Nexaura", "Brightwave", "Quantiq", "Ohmlux"),
        {
            "Headphones": (80.0, ("Wireless Headphones", "Earbuds", "Studio Headphones")),
            "Smartphones": (420.0, ("Smartphone", "Phone 5G", "Phone Lite")),
            "Laptops": (850.0, ("Laptop 14in", "Ultrabook", "Laptop 16in")),
            "Monitors": (240.0, ('27" Monitor', '24" Monitor', "Curved Monitor")),
            "Smart Home": (55.0, ("Smart Plug", "Smart Speaker", "Video Doorbell")),
            "Cables & Chargers": (18.0, ("USB-C Cable", "Wall Charger", "Power Bank")),
        },
    ),
    "Home & Kitchen": (
        0.15,
        ("Hearthwell", "Copperleaf", "Nestora", "Kitchora"),
        {
            "Cookware": (45.0, ("Frying Pan", "Saucepan Set", "Casserole Dish")),
            "Small Appliances": (70.0, ("Kettle", "Toaster", "Blender")),
            "Bedding": (40.0, ("Duvet Cover", "Pillow Pair", "Fitted Sheet")),
            "Storage": (20.0, ("Storage Box", "Food Containers, Set of 5", "Shelf Organiser")),
            "Tableware": (25.0, ("Dinner Plates, Set of 4", "Mug", "Glass Tumblers")),
        },
    ),
    "Fashion": (
        0.22,
        ("Linden & Vale", "Norththread", "Mireille", "Urbanloom"),
        {
            "Tops": (25.0, ("T-Shirt", "Blouse", "Sweatshirt")),
            "Trousers": (45.0, ("Jeans", "Chinos", "Joggers")),
            "Shoes": (70.0, ("Trainers", "Ankle Boots", "Loafers")),
            "Outerwear": (110.0, ("Rain Jacket", "Wool Coat", "Puffer Jacket")),
            "Accessories": (20.0, ("Scarf", "Belt", "Beanie")),
        },
    ),
    "Beauty": (
        0.09,
        ("Lumiere Botanica", "Velvetine", "Purelle", "Glowry"),
        {
            "Skincare": (22.0, ("Moisturiser", "Face Serum", "Cleanser")),
            "Makeup": (16.0, ("Lipstick", "Mascara", "Foundation")),
            "Haircare": (12.0, ("Shampoo", "Conditioner", "Hair Oil")),
            "Fragrance": (55.0, ("Eau de Parfum", "Eau de Toilette", "Body Mist")),
        },
    ),
    "Sports & Outdoors": (
        0.05,
        ("Trailforge", "Peakline", "Stridex", "Kinetica"),
        {
            "Fitness Equipment": (60.0, ("Dumbbell Pair", "Yoga Mat", "Kettlebell")),
            "Cycling": (120.0, ("Bike Helmet", "Bike Lights", "Cycling Jersey")),
            "Camping": (80.0, ("2-Person Tent", "Sleeping Bag", "Camping Stove")),
            "Running": (55.0, ("Running Shoes", "Running Vest", "Hydration Belt")),
            "Team Sports": (30.0, ("Football", "Shin Guards", "Basketball")),
        },
    ),
    "Books": (
        0.06,
        ("Harbourlight Press", "Quillstone Books", "Maple Leaf Publishing", "Inkwell House"),
        {
            "Fiction": (12.0, ("Novel", "Short Stories", "Thriller")),
            "Non-Fiction": (18.0, ("Biography", "History", "Popular Science")),
            "Children's Books": (8.0, ("Picture Book", "Bedtime Stories", "Activity Book")),
            "Cookbooks": (22.0, ("Cookbook", "Baking Book", "Vegetarian Cookbook")),
            "Comics & Graphic Novels": (15.0, ("Graphic Novel", "Comic Annual", "Manga Vol. 1")),
        },
    ),
    "Toys & Games": (
        0.04,
        ("Playnest", "Brickory", "Funderful", "Tinytrek"),
        {
            "Board Games": (30.0, ("Board Game", "Card Game", "Strategy Game")),
            "Building Sets": (45.0, ("Building Set", "Construction Kit", "Marble Run")),
            "Dolls & Figures": (20.0, ("Action Figure", "Doll", "Plush Toy")),
            "Puzzles": (15.0, ("Jigsaw, 1000 Pieces", "3D Puzzle", "Puzzle Cube")),
            "Outdoor Toys": (35.0, ("Scooter", "Water Blaster", "Kite")),
        },
    ),
    "Grocery": (
        0.26,
        ("Greenfield Farms", "Bean & Barrel", "Pantry Co.", "Daily Harvest"),
        {
            "Coffee & Tea": (9.0, ("Ground Coffee, 500 g", "Coffee Beans", "Green Tea")),
            "Snacks": (4.0, ("Crisps", "Chocolate Bar", "Trail Mix")),
            "Pantry": (5.0, ("Olive Oil", "Pasta", "Basmati Rice")),
            "Beverages": (3.0, ("Sparkling Water", "Orange Juice", "Cola")),
            "Breakfast": (5.0, ("Granola", "Porridge Oats", "Honey")),
        },
    ),
}

CATEGORIES: Final[tuple[str, ...]] = tuple(CATALOGUE)

PRODUCT_ADJECTIVES: Final[tuple[str, ...]] = (
    "Classic",
    "Essential",
    "Premium",
    "Everyday",
    "Pro",
    "Compact",
    "Deluxe",
    "Eco",
    "Signature",
    "Original",
)

# --- People --------------------------------------------------------------------------

FEMALE_FIRST_NAMES: Final[tuple[str, ...]] = (
    "Anna", "Emma", "Olivia", "Sofia", "Mia", "Amelia", "Isla", "Chloé", "Hannah", "Lea",
    "Priya", "Aisha", "Yuki", "Maria", "Lucía", "Freya", "Ingrid", "Zoë", "Grace", "Nora",
    "Elena", "Fatima", "Chiara", "Julia", "Sarah",
)  # fmt: skip
MALE_FIRST_NAMES: Final[tuple[str, ...]] = (
    "James", "Oliver", "Liam", "Noah", "Lucas", "Mateo", "Leon", "Finn", "Arjun", "Omar",
    "Kenji", "David", "Jan", "Pierre", "Marco", "Erik", "Tomás", "Samuel", "Daniel", "Ethan",
    "Hugo", "Felix", "Ravi", "Thabo", "William",
)  # fmt: skip
NEUTRAL_FIRST_NAMES: Final[tuple[str, ...]] = (
    "Alex", "Sam", "Robin", "Charlie", "Jordan", "Kai", "River", "Sasha", "Jamie", "Rowan",
)  # fmt: skip
LAST_NAMES: Final[tuple[str, ...]] = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Khan", "O'Brien", "Murphy", "Müller", "Schmidt", "Schneider", "Dubois", "Martin",
    "Bernard", "de Vries", "Jansen", "Peeters", "García", "Fernández", "Rossi", "Bianchi",
    "Andersson", "Nielsen", "Kowalski", "Nowak", "Miller", "Davis", "Clark", "Lewis",
    "Tremblay", "Hernández", "Silva", "Santos", "Nguyen", "Tanaka", "Sato", "Tan", "Lim",
    "Sharma", "Singh", "van der Merwe", "Naidoo", "Al-Farsi", "Smith-Jones", "Walker", "Young",
)  # fmt: skip

EMAIL_DOMAINS: Final[tuple[str, ...]] = (
    "example.com",
    "example.org",
    "example.net",
    "mail.test",
    "inbox.example",
    "post.invalid",
)
EMAIL_DOMAIN_WEIGHTS: Final[tuple[float, ...]] = (0.35, 0.2, 0.15, 0.12, 0.1, 0.08)

# --- Geography -----------------------------------------------------------------------
# code -> (English name, weight, aliases, cities)

COUNTRIES: Final[dict[str, tuple[str, float, tuple[str, ...], tuple[str, ...]]]] = {
    "GB": ("United Kingdom", 0.22, ("UK", "Great Britain"), ("London", "Manchester", "Leeds")),
    "IE": ("Ireland", 0.03, (), ("Dublin", "Cork", "Galway")),
    "DE": ("Germany", 0.10, ("Deutschland",), ("Berlin", "München", "Hamburg")),
    "FR": ("France", 0.06, (), ("Paris", "Lyon", "Marseille")),
    "NL": ("Netherlands", 0.04, ("Holland",), ("Amsterdam", "Rotterdam", "Utrecht")),
    "BE": ("Belgium", 0.02, (), ("Brussels", "Antwerp", "Ghent")),
    "ES": ("Spain", 0.04, (), ("Madrid", "Barcelona", "Valencia")),
    "IT": ("Italy", 0.04, (), ("Rome", "Milan", "Turin")),
    "SE": ("Sweden", 0.02, (), ("Stockholm", "Göteborg", "Malmö")),
    "DK": ("Denmark", 0.015, (), ("Copenhagen", "Aarhus", "Odense")),
    "PL": ("Poland", 0.02, (), ("Warsaw", "Kraków", "Gdańsk")),
    "US": (
        "United States",
        0.18,
        ("USA", "United States of America"),
        ("New York", "Chicago", "Austin"),
    ),
    "CA": ("Canada", 0.04, (), ("Toronto", "Montréal", "Vancouver")),
    "MX": ("Mexico", 0.015, (), ("Mexico City", "Guadalajara", "Monterrey")),
    "BR": ("Brazil", 0.02, (), ("São Paulo", "Rio de Janeiro", "Brasília")),
    "AU": ("Australia", 0.04, (), ("Sydney", "Melbourne", "Brisbane")),
    "NZ": ("New Zealand", 0.01, (), ("Auckland", "Wellington", "Christchurch")),
    "JP": ("Japan", 0.02, (), ("Tokyo", "Osaka", "Yokohama")),
    "SG": ("Singapore", 0.01, (), ("Singapore",)),
    "IN": ("India", 0.03, (), ("Mumbai", "Bengaluru", "Delhi")),
    "ZA": ("South Africa", 0.01, (), ("Johannesburg", "Cape Town", "Durban")),
    "AE": ("United Arab Emirates", 0.01, ("UAE",), ("Dubai", "Abu Dhabi", "Sharjah")),
}

# --- Raw spellings of clean values (legal variants staging must normalise) -------------

GENDER_SPELLINGS: Final[dict[str, tuple[str, ...]]] = {
    "female": ("female", "F", "Female"),
    "male": ("male", "M", "MALE"),
    "non_binary": ("non_binary", "X"),
}
CONSENT_SPELLINGS: Final[dict[bool, tuple[str, ...]]] = {
    True: ("true", "yes", "1", "Y"),
    False: ("false", "no", "0", "N"),
}
CHANNELS: Final[tuple[str, ...]] = ("web", "mobile_app", "marketplace", "call_centre")
CHANNEL_WEIGHTS: Final[tuple[float, ...]] = (0.45, 0.35, 0.15, 0.05)
STATUSES: Final[tuple[str, ...]] = ("completed", "returned", "cancelled")

# --- Flaw values ---------------------------------------------------------------------

INVALID_PHONES: Final[tuple[str, ...]] = ("12", "call me", "unknown", "+44", "0000", "tbc")
UNKNOWN_COUNTRIES: Final[tuple[str | None, ...]] = ("Atlantis", "XX", "N/A", None)
UNPARSEABLE_BIRTH_DATES: Final[tuple[str, ...]] = (
    "31/02/1980",
    "unknown",
    "1985-02-30",
    "19/07/85",
    "not given",
)
QUANTITY_WORDS: Final[tuple[str, ...]] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
)  # fmt: skip
UNPARSEABLE_ORDER_ATS: Final[tuple[str, ...]] = (
    "2024-13-45 10:00:00",
    "2023-02-30 25:61:00",
    "yesterday",
    "31/12/2024 10:00",
)
