"""The word lists fakes are made of.

Deliberately unlike real people and companies (nature words for first names, made-up place
names for last names, Latin filler for text), and sharing no word with the sample seed's or
the volume generator's names, so a test can search an anonymized file for any of those and
find nothing.
"""

from __future__ import annotations

_FIRST_NAMES = """
Alder Aspen Basil Birch Briar Cedar Clover Coral Dahlia Drake Dune Echo Elm Ember Fern Finch
Flint Gale Garnet Glen Hazel Heath Holly Indigo Iris Ivy Jade Jasper Juniper Kale Kestrel Kite
Lark Laurel Linden Maple Moss Myrtle Nettle North Nova Oak Olive Onyx Pine Pippin Poppy Quill
Rain Reed Rowan Sage Sorrel Storm Tansy Thistle Umber Vale Willow Wren Yarrow Yew Zephyr Ash
"""

_LAST_NAMES = """
Aldmoor Amberley Ashford Blackmoor Bramblecote Brightwater Coldbrook Copperfield Crestfield
Dewhurst Dovecote Dunmore Eastwick Eldergrove Elmsworth Fairholm Fernley Foxley Glenrothes
Goldthorpe Greywood Hallowell Harrowgate Hawksmoor Inverleigh Ironside Ivybridge Kettleby
Kingsmere Lindqvist Longmead Marwick Mossgiel Netherby Northcote Oakhurst Oldcastle Pemberly
Pennywhistle Quarrington Ravensworth Redmayne Saltmarsh Stonebridge Thornbury Tidewell
Underhill Valemont Vickerby Westerby Whitlock Yarborough Yewdale Ambleside Birchwood Cloudsley
Driftwood Emberton Frostwick Galloway Heathcote Kirkwall Lowther Meadowbrook
"""

_COMPANY_WORDS = """
Amber Arbor Atlas Beacon Bright Cinder Cobalt Comet Crimson Delta Ember Falcon Fjord Granite
Harbor Horizon Indigo Juniper Keystone Lantern Lumen Maple Meridian Nimbus North Oak Onyx
Orbit Pioneer Prism Quartz Raven Ridge River Sable Sierra Silver Solstice Summit Tidal Timber
Vector Velvet Willow Zenith Aurora Basalt Cascade Drift Evergreen Frost Glacier Harvest Isle
Jetty Kelp Lagoon Mistral Nectar Opal Pebble Quill Saffron
"""

_COMPANY_KINDS = """
Analytics Bakery Builders Consulting Design Dynamics Foods Freight Holdings Industries
Interactive Labs Logistics Media Motors Networks Outfitters Partners Robotics Studios Supplies
Systems Textiles Ventures
"""

COMPANY_SUFFIXES = ("Ltd", "LLC", "GmbH", "Co", "Group", "Inc", "SA", "BV")

# Filler text: Latin, so no word of it is anybody's data.
_LATIN = """
lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut
labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris
nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse
cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui
officia deserunt mollit anim id est laborum curabitur pretium tincidunt lacus nunc pulvinar
sapien pellentesque habitant morbi tristique senectus netus fames turpis egestas vestibulum
tortor quam feugiat vitae ultricies eget tempus mauris placerat eleifend leo quisque risus
viverra accumsan mattis vulputate cursus porta donec faucibus
"""

FIRST_NAMES = tuple(_FIRST_NAMES.split())
LAST_NAMES = tuple(_LAST_NAMES.split())
COMPANY_WORDS = tuple(_COMPANY_WORDS.split())
COMPANY_KINDS = tuple(_COMPANY_KINDS.split())
LATIN = tuple(_LATIN.split())
